"""The promotion gate: a worse round is not promoted, the comparison is size-weighted over the
sites that reported both models, decisions persist in the federation folder and survive a
restart, and the strategy's evaluate stage sends the promoted model and feeds the gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.server.federated.gated_strategy import GatedUpdateAveraging
from fedcodec.server.federated.promotion import PromotionGate
from fedcodec.shared.neural.parameter_bytes import bytes_to_arrays


def _report(site, cand, prom, pixels):
    return {"site": site, "heldout_bpp": cand, "promoted_bpp": prom, "heldout_pixels": pixels}


def test_worse_round_is_not_promoted_and_decisions_persist(tmp_path):
    start = [np.zeros(3, np.float32)]
    gate = PromotionGate(tmp_path, start)
    worse = gate.decide(1, [np.ones(3, np.float32)], [_report("a", 5.1, 5.0, 100),
                                                      _report("b", 4.0, 3.9, 100)])
    assert not worse.promoted and gate.promoted_round == 0
    assert np.array_equal(gate.promoted[0], start[0]) and not gate.params_path.exists()
    better = gate.decide(2, [np.full(3, 2, np.float32)], [_report("a", 4.9, 5.0, 100),
                                                          _report("b", 3.8, 3.9, 100)])
    assert better.promoted and gate.promoted_round == 2
    assert better.candidate_bpp == pytest.approx(4.35) and better.promoted_bpp == pytest.approx(4.45)
    log = json.loads(gate.log_path.read_text())
    assert log["promoted_round"] == 2 and [d["promoted"] for d in log["decisions"]] == [False, True]
    assert "does not improve" in log["decisions"][0]["reason"]
    # a restarted server gets the promoted model and the log back from the federation folder
    again = PromotionGate(tmp_path, start)
    assert again.promoted_round == 2 and np.array_equal(again.promoted[0], np.full(3, 2))
    assert len(again.decisions) == 2


def test_size_weighting_missing_reports_and_min_gain(tmp_path):
    gate = PromotionGate(tmp_path, [np.zeros(1, np.float32)])
    # unweighted the candidate wins (mean 4.5 vs 4.55); weighted by pixels the big site decides
    d = gate.decide(1, [np.ones(1, np.float32)], [_report("small", 3.0, 3.5, 10),
                                                  _report("big", 6.0, 5.6, 1000)])
    assert not d.promoted and d.candidate_bpp > d.promoted_bpp
    # a site that reported no bpp (policy, or nothing held out) is left out of both means
    d = gate.decide(2, [np.ones(1, np.float32)], [{"site": "quiet"}, _report("a", 3.0, 3.2, 5)])
    assert d.promoted and set(d.sites) == {"a"}
    d = gate.decide(3, [np.ones(1, np.float32)], [{"site": "quiet"}])
    assert not d.promoted and "no site reported" in d.reason
    strict = PromotionGate(tmp_path / "strict", [np.zeros(1, np.float32)], min_gain=0.05)
    assert not strict.decide(1, [np.ones(1, np.float32)], [_report("a", 3.97, 4.0, 5)]).promoted


def test_strategy_sends_the_promoted_model_and_feeds_the_gate(tmp_path):
    from flwr.common import Code, EvaluateRes, Status

    start = [np.zeros((2, 2), np.float32)]
    gate = PromotionGate(tmp_path, start)
    decisions = []
    strategy = GatedUpdateAveraging(FederationConfig(update_clip=10.0), start, 4, gate,
                                    on_decision=decisions.append)
    config = strategy.on_evaluate_config_fn(1)
    assert config["server-round"] == 5 and config["promoted-round"] == 0
    assert np.array_equal(bytes_to_arrays(config["promoted"])[0], start[0])
    strategy.current = [np.ones((2, 2), np.float32)]
    ok = Status(Code.OK, "")
    results = [(None, EvaluateRes(ok, 6.0, 1, _report("a", 6.0, 5.0, 10))),
               (None, EvaluateRes(ok, 4.0, 1, _report("b", 4.0, 4.5, 30)))]
    loss, metrics = strategy.aggregate_evaluate(1, results, [])
    assert decisions[0].round == 5 and decisions[0].promoted  # 4.5 < 4.625 weighted
    assert loss == pytest.approx(4.5) and metrics["promoted"] == 1
    assert np.array_equal(bytes_to_arrays(strategy.on_evaluate_config_fn(2)["promoted"])[0],
                          np.ones((2, 2)))
