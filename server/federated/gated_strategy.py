"""The federation's strategy with the promotion gate as its evaluation stage.

After every fit round Flower's evaluate stage sends the round's candidate (the new global model)
to the sites, with the promoted model's parameters in the config (``promoted``, bytes); each site
answers with its held-out bpp under both and its held-out pixel count (``client/federated/
site_evaluation.py``), and :class:`PromotionGate` decides. No training data is touched: held-out
series only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.server.federated.promotion import PromotionDecision, PromotionGate
from fedcodec.server.federated.strategy import RoundHook, UpdateAveraging
from fedcodec.shared.neural.parameter_bytes import arrays_to_bytes

log = logging.getLogger(__name__)
DecisionHook = Callable[[PromotionDecision], None]


class GatedUpdateAveraging(UpdateAveraging):
    """:class:`UpdateAveraging` plus an evaluation round per fit round that feeds the gate."""

    def __init__(self, config: FederationConfig, initial: list[np.ndarray], start_round: int,
                 gate: PromotionGate, on_round: RoundHook | None = None,
                 on_decision: DecisionHook | None = None) -> None:
        super().__init__(config, initial, start_round, on_round)
        self.gate = gate
        self.on_decision = on_decision
        self.fraction_evaluate = 1.0
        self.min_evaluate_clients = 1
        self.on_evaluate_config_fn = self._evaluate_config

    def _evaluate_config(self, server_round: int) -> dict:
        return {"server-round": self.start_round + server_round,
                "promoted": arrays_to_bytes(self.gate.promoted),
                "promoted-round": self.gate.promoted_round}

    def aggregate_evaluate(self, server_round, results, failures):
        round_index = self.start_round + server_round
        reports = [dict(res.metrics) for _, res in results]
        decision = self.gate.decide(round_index, self.current, reports)
        log.info("round %d: %s model (%s)", round_index,
                 "promoted the" if decision.promoted else "kept the promoted", decision.reason)
        if self.on_decision is not None:
            self.on_decision(decision)
        metrics = {"promoted": int(decision.promoted), "failures": len(failures)}
        return decision.candidate_bpp, metrics
