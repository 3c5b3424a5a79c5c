"""The promotion gate through Flower (simulation engine, SecAgg+): the federation starts from the
shipped weights, each site answers the evaluate stage with held-out bpp of the candidate and of
the promoted model, a round that makes the codec worse is not promoted, nothing is registered,
and MLflow's artifacts stay in the federation folder, not the working directory."""

from __future__ import annotations

import json

import pytest
from conftest import require_shared_data

BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
           "init_args": {"num_cpus": 2, "include_dashboard": False}}


@pytest.mark.shared_data
@pytest.mark.slow(50)
def test_a_worse_round_from_the_shipped_weights_is_not_promoted(tmp_path, monkeypatch):
    import mlflow
    from flwr.simulation import run_simulation

    from fedcodec.client.federated.client_app import build_client_app
    from fedcodec.server.federated.federation_config import FederationConfig
    from fedcodec.server.federated.server_app import build_server_app

    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = {
        "num-server-rounds": 1, "sites": "ge,toshiba", "data-root": str(require_shared_data("dicom")),
        "state-root": str(tmp_path / "sites"), "checkpoint-dir": str(tmp_path / "fed" / "server"),
        "unit": "slice", "dp": False, "lr": 0.05,  # a deliberately destructive round
        "local-steps": 3, "batch-units": 4.0, "pixels-per-unit": 16, "pixels-per-group": 16,
        "max-slices": 2, "min-fit-clients": 2, "min-available-clients": 2, "round-timeout": 120.0,
        "register-model": "fedcodec-test-gate", "reproducible-noise": True,
    }
    from fedcodec.client.federated.site_policy import SitePolicy, save_policy

    for site in ("ge", "toshiba"):  # each site's own policy admits this destructive test round
        save_policy(tmp_path / "sites" / site, SitePolicy(unit="slice", dp=False, min_patients=1))
    results: list = []
    run_simulation(build_server_app(config, results), build_client_app(config), num_supernodes=2,
                   backend_config=BACKEND)
    strategy = results[0]
    decision = strategy.gate.decisions[-1]
    assert sorted(decision.sites) == ["ge", "toshiba"]
    assert not decision.promoted and decision.candidate_bpp > decision.promoted_bpp
    assert strategy.gate.promoted_round == 0
    server = tmp_path / "fed" / "server"
    assert json.loads((server / "promotion.json").read_text())["promoted_round"] == 0
    assert not (server / "neural_federated.npz").exists()

    fed = FederationConfig.from_run_config(config)
    client = mlflow.MlflowClient(fed.tracking_uri())
    assert client.search_model_versions("name='fedcodec-test-gate'") == []
    run = client.search_runs([client.get_experiment_by_name(fed.mlflow_experiment).experiment_id])[0]
    assert run.data.metrics["promotion/promoted"] == 0.0
    assert run.info.artifact_uri.startswith((server / "mlartifacts").as_uri())
    assert [f.path for f in client.list_artifacts(run.info.run_id, "promotion")] == \
        ["promotion/promotion.json"]
    assert list(cwd.iterdir()) == []
