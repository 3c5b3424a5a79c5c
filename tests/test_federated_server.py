"""Server side without a network: update averaging, central DP noise, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

from fedcodec.server.federated.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.server.federated.strategy import UpdateAveraging
from fedcodec.shared.errors import CorruptDataError


def _result(update: list[np.ndarray], site: str):
    return (None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(update), 1, {"site": site}))


def test_mean_update_is_added_to_the_global_model_and_reported():
    seen = []
    initial = [np.zeros((3, 2), np.float32), np.ones(4, np.float32)]
    strategy = UpdateAveraging(FederationConfig(update_clip=10.0), initial, start_round=5,
                               on_round=lambda r, params, metrics: seen.append((r, metrics)))
    a = [np.full((3, 2), 1.0, np.float32), np.full(4, 2.0, np.float32)]
    b = [np.full((3, 2), 3.0, np.float32), np.full(4, -2.0, np.float32)]
    params, summary = strategy.aggregate_fit(1, [_result(a, "ge"), _result(b, "toshiba")], [])
    new = parameters_to_ndarrays(params)
    assert np.array_equal(new[0], np.full((3, 2), 2.0)) and np.array_equal(new[1], np.ones(4))
    assert summary == {"sites": 2, "failures": 0}
    assert seen == [(6, [{"site": "ge"}, {"site": "toshiba"}])]  # round offset by the checkpoint
    assert strategy.aggregate_fit(2, [], [RuntimeError("gone")]) == (None, {"failures": 1})


def test_a_mean_update_no_clipped_updates_can_produce_is_rejected():
    """Honest sites' updates have norm <= update-clip, so their mean does too: a larger unmasked
    mean means a site cheated, and the round must leave the global model unchanged."""
    initial = [np.zeros(100, np.float32)]
    strategy = UpdateAveraging(FederationConfig(update_clip=1.0), initial, start_round=0)
    honest = [np.full(100, 0.1, np.float32)]  # norm exactly 1.0
    params, summary = strategy.aggregate_fit(1, [_result(honest, "a"), _result(honest, "b")], [])
    assert "rejected" not in summary and not strategy.history[-1]["rejected"]
    assert np.allclose(parameters_to_ndarrays(params)[0], 0.1)
    forged = [np.full(100, 5.0, np.float32)]  # what SecAgg+ unmasks if one site skips clipping
    params, summary = strategy.aggregate_fit(2, [_result(forged, "a"), _result(forged, "b")], [])
    assert summary["rejected"] == 1 and strategy.history[-1]["rejected"]
    assert strategy.history[-1]["mean_update_norm"] == pytest.approx(50.0)
    assert np.allclose(parameters_to_ndarrays(params)[0], 0.1)  # unchanged by the bad round
    nan = [np.full(100, np.nan, np.float32)]
    _, summary = strategy.aggregate_fit(3, [_result(nan, "a"), _result(nan, "b")], [])
    assert summary["rejected"] == 1 and np.allclose(strategy.current[0], 0.1)


def test_central_dp_noise_has_the_calibrated_spread():
    config = FederationConfig(central_dp_noise=2.0, update_clip=0.5)
    strategy = UpdateAveraging(config, [np.zeros(200_000, np.float32)], start_round=0)
    zero = [np.zeros(200_000, np.float32)]
    params, _ = strategy.aggregate_fit(1, [_result(zero, "a"), _result(zero, "b")], [])
    noisy = parameters_to_ndarrays(params)[0]
    assert strategy.central_noise_std(2) == pytest.approx(0.5)  # 2.0 * 0.5 / 2 sites
    assert noisy.std() == pytest.approx(0.5, rel=0.02) and abs(noisy.mean()) < 0.01
    assert np.array_equal(strategy.updates[0][0], zero[0])  # recorded before the noise


def test_checkpoint_round_trip_and_corruption(tmp_path):
    path = tmp_path / "server" / "checkpoint.npz"
    assert load_checkpoint(path) is None
    params = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5], np.float32)]
    save_checkpoint(path, Checkpoint(7, params, "run-abc"))
    back = load_checkpoint(path)
    assert back.round == 7 and back.mlflow_run_id == "run-abc"
    assert all(np.array_equal(x, y) for x, y in zip(back.parameters, params))
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.npz"]  # no temp left
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CorruptDataError, match="checkpoint .* is unreadable"):
        load_checkpoint(path)
