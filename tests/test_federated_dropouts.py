"""SecAgg+ with a site lost at each of its four stages, message by message, in one process.

The coordinator's real ``run_federation`` (DropoutTolerantSecAggPlus, retries, checkpoint, MLflow)
talks to real ClientApps (the site guard mod + Flower's ``secaggplus_mod``) through an in-memory
Grid; each site's client returns a known constant update instead of training, so the unmasked mean
can be checked exactly. A "killed" site answers every message from its stage on with an error,
as Flower does for a SuperNode that died. Before the fix, a site lost in the share-keys stage made
every survivor raise ``KeyError: <node id>`` in the unmask stage (flwr 1.42).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from flwr.app import Context, Error, Message, RecordDict
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.supercore.task_identity import TaskIdentity

from fedcodec.client.federated.client_app import site_guard
from fedcodec.server.federated.federation import initial_model, model_arrays, run_federation
from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.server.federated.round_retry import RoundFailed

STAGES = (Stage.SETUP, Stage.SHARE_KEYS, Stage.COLLECT_MASKED_VECTORS, Stage.UNMASK)


class ConstantClient(NumPyClient):
    """Returns ``value`` everywhere as its update (what a site's clipped update would be)."""

    def __init__(self, value: float, name: str) -> None:
        self.value, self.name = value, name

    def fit(self, parameters, config):
        return [np.full_like(p, self.value) for p in parameters], 1, {"site": self.name}


def _constant_client_fn(value: float, name: str):
    def client_fn(context: Context):
        return ConstantClient(value, name).to_client()

    return client_fn


class FakeRun:
    run_id = 1


class InMemoryGrid:
    """The Grid the legacy workflow sees: every message goes straight to that node's ClientApp."""

    def __init__(self, sites: dict[int, float], state_root, kill: dict[int, str],
                 run_config: dict) -> None:
        self.run = FakeRun()
        self.kill = kill
        self.values = sites
        self.contexts = {
            nid: Context(run_id=1, node_id=nid, node_config={
                "data-dir": str(state_root / f"data{nid}"), "site": f"site{nid}",
                "state-dir": str(state_root / f"site{nid}")}, state=RecordDict(),
                run_config=dict(run_config))
            for nid in sites}
        self.apps = {nid: ClientApp(client_fn=_constant_client_fn(v, f"site{nid}"),
                                    mods=[site_guard()]) for nid, v in sites.items()}
        self.crashes: list[str] = []

    def get_node_ids(self):
        return list(self.values)

    def _stage(self, msg: Message) -> str:
        return str(msg.content.config_records[RECORD_KEY_CONFIGS][Key.STAGE])

    def _reply(self, msg: Message) -> Message:
        nid = msg.metadata.dst_node_id
        if nid in self.kill and STAGES.index(self._stage(msg)) >= STAGES.index(self.kill[nid]):
            return Message(Error(code=0, reason="SuperNode lost"), reply_to=msg)
        try:
            return self.apps[nid](message=msg, context=self.contexts[nid])
        except Exception as exc:  # what Flower would turn into an error reply: a site crash
            self.crashes.append(f"{type(exc).__name__}: {exc}")
            return Message(Error(code=2, reason=repr(exc)), reply_to=msg)

    def send_and_receive(self, messages, *, timeout=None):
        # each node gets its own copy, as after serialisation (the setup stage shares one content)
        return [self._reply(copy.deepcopy(m)) for m in messages]


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch, tmp_path):
    # the tests name an sqlite store: MLflow puts its artifacts in ./mlruns of the working
    # folder, which must be the test's own, not the checkout (tests run side by side)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 0)


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    """One store for the module (creating an MLflow sqlite schema costs ~10 s); one experiment
    per test."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _run(tmp_path, uri: str, n_sites: int, kill: dict[int, str], rounds: int = 1, **extra):
    values = {100 + i: 0.01 * (i + 1) for i in range(n_sites)}
    for nid in values:
        (tmp_path / f"data{nid}").mkdir(exist_ok=True)
    run_config = {"num-server-rounds": rounds, "min-fit-clients": 2, "min-available-clients": 2,
                  "round-timeout": 5.0, "round-retries": 1, "checkpoint-dir": str(tmp_path / "server"),
                  "mlflow-uri": uri, "mlflow-experiment": tmp_path.name, "log-model": False,
                  "unit": "patient", "promotion-gate": False,
                  "initial-weights": "none", **extra}
    grid = InMemoryGrid(values, tmp_path, kill, run_config)
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(),
                      run_config=run_config)
    return grid, values, run_config, context


@pytest.mark.parametrize("stage", STAGES)
def test_site_lost_at_each_stage_round_completes_with_survivors(tmp_path, mlflow_uri, stage):
    grid, values, run_config, context = _run(tmp_path, mlflow_uri, 3, {101: stage})
    strategy = run_federation(grid, context)
    assert grid.crashes == []  # no surviving ClientApp crashed (was KeyError at share_keys)
    assert [h["round"] for h in strategy.history] == [1]
    # a site lost after sending its masked vector (unmask stage) is still in the sum
    in_sum = [v for nid, v in values.items() if nid != 101 or stage == Stage.UNMASK]
    start = model_arrays(initial_model(FederationConfig.from_run_config(run_config)))
    expected = float(np.mean(in_sum))
    for got, before in zip(strategy.current, start):
        np.testing.assert_allclose(got - before, expected, atol=1e-5)


def test_too_few_survivors_fails_cleanly_retries_then_stops(tmp_path, mlflow_uri):
    import mlflow

    from fedcodec.server.federated.checkpoint import load_checkpoint

    grid, _, run_config, context = _run(tmp_path, mlflow_uri, 2, {101: Stage.SHARE_KEYS})
    with pytest.raises(RoundFailed, match="round 1 produced no aggregate in 2 attempt"):
        run_federation(grid, context)
    assert grid.crashes == []
    assert load_checkpoint(tmp_path / "server" / "checkpoint.npz") is None
    client = mlflow.MlflowClient(run_config["mlflow-uri"])
    runs = client.search_runs([client.get_experiment_by_name(tmp_path.name).experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert [m.value for m in client.get_metric_history(runs[0].info.run_id,
                                                       "failed_attempts")] == [1.0, 2.0]
    assert not client.search_model_versions(f"run_id='{runs[0].info.run_id}'")  # none registered
    assert not (tmp_path / "server" / "neural_federated.npz").exists()


def test_site_refusal_is_seen_by_the_coordinator_and_logged(tmp_path, mlflow_uri):
    import mlflow

    from fedcodec.client.federated.site_policy import read_refusals

    # the run asks for slice-level DP: every site (default policy: patient) refuses
    grid, _, run_config, context = _run(tmp_path, mlflow_uri, 3, {}, unit="slice")
    with pytest.raises(RoundFailed):
        run_federation(grid, context)
    client = mlflow.MlflowClient(run_config["mlflow-uri"])
    run = client.search_runs([client.get_experiment_by_name(tmp_path.name).experiment_id])[0]
    assert client.get_metric_history(run.info.run_id, "site100/refused")[0].value == 1.0
    text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/refusals.txt")
    assert "site site101 refuses the round: unit=slice is finer than the site's unit patient" in text
    refusals = read_refusals(tmp_path / "site102")
    assert refusals and refusals[0]["round"] == 1 and "unit=slice" in refusals[0]["reason"]


def test_without_the_workarounds_flwr_crashes_the_survivors(tmp_path, mlflow_uri, monkeypatch):
    """The reported bug, reproduced: Flower 1.42's own workflow and mod, a site lost while
    sharing keys -> every surviving ClientApp raises KeyError(<lost node id>) when unmasking."""
    from flwr.server.workflow import SecAggPlusWorkflow

    import fedcodec.client.federated.client_app as client_app
    import fedcodec.server.federated.federation as federation

    monkeypatch.setattr(client_app, "drop_unshared_ids", lambda msg, ctxt: [])
    monkeypatch.setattr(federation, "fit_workflow", lambda config: SecAggPlusWorkflow(
        num_shares=1.0, reconstruction_threshold=0.5, max_weight=1.0, clipping_range=4.0,
        quantization_range=1 << 22, timeout=5.0))
    grid, _, _, context = _run(tmp_path, mlflow_uri, 3, {101: Stage.SHARE_KEYS}, **{"round-retries": 0})
    with pytest.raises(RoundFailed):
        run_federation(grid, context)
    assert grid.crashes == ["KeyError: 101", "KeyError: 101"]


def test_shares_that_fail_to_combine_halt_the_attempt_instead_of_crashing(monkeypatch):
    """flwr's ``combine_shares`` raised ``ValueError`` out of the ServerApp under load; now the
    attempt halts (no aggregate, failure recorded) and the retry wrapper runs the round again."""
    from types import SimpleNamespace

    from flwr.server.workflow import SecAggPlusWorkflow

    from fedcodec.server.federated.secagg_workflow import DropoutTolerantSecAggPlus

    def broken(self, grid, context, state):
        raise ValueError("Failed to combine shares")

    monkeypatch.setattr(SecAggPlusWorkflow, "unmask_stage", broken)
    workflow = DropoutTolerantSecAggPlus(num_shares=3, reconstruction_threshold=2)
    state = SimpleNamespace(failures=[])
    assert workflow.unmask_stage(None, None, state) is False
    assert [str(e) for e in workflow.last_failures] == ["Failed to combine shares"]
