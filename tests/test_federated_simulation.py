"""Federated training in Flower's simulation engine (Ray): DP-SGD at patient level, SecAgg+,
a site that drops out mid-round, persisted accountants, checkpoint + resume, MLflow.

Three simulated sites: ``ge`` and ``toshiba`` from the shared data, and ``gone``, whose folder
does not exist — it completes SecAgg+'s key set-up, then fails when it should train, i.e. it
drops out in the middle of every round. Rounds must still complete with the other two.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_shared_data

TARGET_EPSILON = 6.0
BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
           "init_args": {"num_cpus": 2, "include_dashboard": False}}


def _config(tmp_path, data_root, rounds: int) -> dict:
    return {
        "num-server-rounds": rounds, "sites": "ge,toshiba,gone", "data-root": str(data_root),
        "state-root": str(tmp_path / "sites"), "checkpoint-dir": str(tmp_path / "server"),
        "unit": "patient", "target-epsilon": TARGET_EPSILON, "delta": 1e-5,
        "local-steps": 3, "batch-units": 2.0, "pixels-per-unit": 16, "pixels-per-group": 16,
        "max-slices": 2, "min-fit-clients": 2, "min-available-clients": 3, "round-timeout": 120.0,
        "register-model": "fedcodec-test-federated",
        "initial-weights": "none", "promotion-gate": False,  # gate: test_federated_gate_simulation
        "reproducible-noise": True,  # lets the test recompute the sites' updates in the clear
    }


def _admit_small_sites(state_root, sites=("ge", "toshiba")) -> None:
    """The shared data hold one or two patients per site: each site's own policy lowers its
    minimum (the default, 2000, refuses patient-level training here)."""
    from fedcodec.client.federated.site_policy import SitePolicy, save_policy

    for site in sites:
        save_policy(state_root / site, SitePolicy(min_patients=1))


def _simulate(config: dict, n_sites: int):
    from flwr.simulation import run_simulation

    from fedcodec.client.federated.client_app import build_client_app
    from fedcodec.server.federated.server_app import build_server_app

    results: list = []
    run_simulation(build_server_app(config, results), build_client_app(config),
                   num_supernodes=n_sites, backend_config=BACKEND)
    assert results and results[0] is not None, "the ServerApp did not finish"
    return results[0]


@pytest.mark.shared_data
@pytest.mark.slow(65)
def test_two_rounds_with_secagg_dp_dropout_then_resume(tmp_path, monkeypatch):
    import mlflow

    from fedcodec.client.federated.site_config import site_config
    from fedcodec.client.federated.site_round import run_site_round
    from fedcodec.server.federated.checkpoint import load_checkpoint
    from fedcodec.server.federated.federation import initial_model, model_arrays
    from fedcodec.server.federated.federation_config import FederationConfig
    from fedcodec.shared.privacy import PrivacyAccountant

    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    data_root = require_shared_data("dicom")
    config = _config(tmp_path, data_root, rounds=2)
    _admit_small_sites(tmp_path / "sites")
    _admit_small_sites(tmp_path / "clear")
    strategy = _simulate(config, 3)

    # both rounds completed without the site that dropped out
    assert [h["round"] for h in strategy.history] == [1, 2]
    for h in strategy.history:
        assert sorted(m["site"] for m in h["sites"]) == ["ge", "toshiba"]
        assert h["failures"] >= 1  # (Flower's SecAgg+ workflow lists a dropped site twice)
        assert all(m["unit"] == "patient" and m["steps"] > 0 for m in h["sites"])

    # each site's persisted accountant names its unit and stays within the target
    for site in ("ge", "toshiba"):
        acc = PrivacyAccountant(tmp_path / "sites" / site / "privacy-patient.json", "patient",
                                TARGET_EPSILON, 1e-5)
        assert len(acc.history) == 2
        assert 0 < acc.epsilon <= TARGET_EPSILON
        reported = [m["epsilon"] for h in strategy.history for m in h["sites"] if m["site"] == site]
        assert reported[-1] == pytest.approx(acc.epsilon)

    # SecAgg+ gave the server the mean of the clipped updates: recompute them in the clear
    # (same seeds, fresh accountants) and compare with what the server unmasked in round 1
    clear = dict(config, **{"state-root": str(tmp_path / "clear")})
    fed = FederationConfig.from_run_config(config)
    start = model_arrays(initial_model(fed))
    updates = [run_site_round(site_config(clear, {"partition-id": i}), start, 1).update
               for i in (0, 1)]
    plain_fedavg = [(a + b) / 2 for a, b in zip(*updates)]
    step = 2 * fed.update_clip / (1 << fed.quantization_bits)
    worst = max(float(np.max(np.abs(s - p))) for s, p in zip(strategy.updates[0], plain_fedavg))
    assert 0 < worst <= 2 * step, worst  # equal up to quantisation, but really quantised
    assert max(float(np.max(np.abs(u))) for u in plain_fedavg) > 1000 * step

    # checkpoint after round 2, MLflow run with per-site metrics and the registered model
    ckpt = load_checkpoint(tmp_path / "server" / "checkpoint.npz")
    assert ckpt.round == 2
    client = mlflow.MlflowClient(fed.tracking_uri())
    history = client.get_metric_history(ckpt.mlflow_run_id, "ge/epsilon_patient")
    assert [m.step for m in history] == [1, 2]
    assert client.get_metric_history(ckpt.mlflow_run_id, "toshiba/heldout_bpp")
    versions = client.search_model_versions("name='fedcodec-test-federated'")
    assert len(versions) == 1 and versions[0].run_id == ckpt.mlflow_run_id

    # restart the server with one more round: it resumes at round 3 in the same MLflow run
    resumed = _simulate(dict(config, **{"num-server-rounds": 3, "log-model": False}), 3)
    assert [h["round"] for h in resumed.history] == [3]
    assert load_checkpoint(tmp_path / "server" / "checkpoint.npz").round == 3
    history = client.get_metric_history(ckpt.mlflow_run_id, "ge/epsilon_patient")
    assert [m.step for m in history] == [1, 2, 3]
    assert max(m.value for m in history) <= TARGET_EPSILON
