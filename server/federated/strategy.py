"""Aggregation: the mean of the sites' clipped updates, optionally noised (central DP).

Sites send *updates* (local minus global, L2-clipped to ``update-clip``) with weight 1. Under
SecAgg+ the server only ever holds their masked sum, unmasked into the mean; without it, the same
mean is computed in the clear (plain FedAvg of updates) — the two agree up to SecAgg+'s
quantisation step. Each aggregated round is handed to ``on_round`` (checkpoint + MLflow).

Bound on a dishonest site: the mean of updates that each have L2 norm <= ``update-clip`` has norm
<= ``update-clip`` (triangle inequality), so an unmasked mean above that bound (plus quantisation
slack) proves that some site skipped its clipping or forged its SecAgg+ share. Such a round is
rejected: the global model stays as it was and the round is recorded with ``rejected``. SecAgg+
hides who it was, and a site that stays inside the bound can still steer the model by up to
``update-clip`` per round (see docs/federated-training.md, Robustness).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.common import Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAvg

from fedcodec.server.federated.federation_config import FederationConfig

log = logging.getLogger(__name__)
RoundHook = Callable[[int, list[np.ndarray], list[dict[str, Any]]], None]
RefusalHook = Callable[[int, list[str]], None]
REFUSAL_PREFIX = "fedcodec site policy"
"""How a site's refusal reason starts (client/federated/site_policy.py; the server cannot import it)."""


def failure_reason(failure: Any) -> str:
    """The one-line reason of a failed reply (an Exception wrapping Flower's ``Error``)."""
    if isinstance(failure, BaseException) and failure.args:
        error = failure.args[0]
        return str(getattr(error, "reason", error))
    return str(failure)


class UpdateAveraging(FedAvg):
    """FedAvg over updates, round numbers offset by the rounds a checkpoint already holds."""

    def __init__(self, config: FederationConfig, initial: list[np.ndarray], start_round: int,
                 on_round: RoundHook | None = None) -> None:
        self.start_round = start_round
        super().__init__(
            fraction_fit=config.fraction_fit,
            fraction_evaluate=0.0,
            min_fit_clients=config.min_fit_clients,
            min_evaluate_clients=0,
            min_available_clients=config.min_available_clients,
            accept_failures=True,
            initial_parameters=ndarrays_to_parameters(initial),
            on_fit_config_fn=lambda r: {"server-round": self.start_round + r},
        )
        self.config = config
        self.current = [np.asarray(a, dtype=np.float32) for a in initial]
        self.on_round = on_round
        self.rng = np.random.default_rng(config.seed + 1_000_003 * (start_round + 1))
        self.history: list[dict[str, Any]] = []
        self.updates: list[list[np.ndarray]] = []
        """The mean update of every round this process aggregated (before central noise)."""
        self.attempt = 1
        self.refusals: list[dict[str, Any]] = []
        """Every site refusal seen: round, attempt, reason (also logged to MLflow)."""
        self.failed_attempts: list[dict[str, Any]] = []
        self.on_refusals: RefusalHook | None = None
        self.on_failed_attempt: Callable[[int, int], None] | None = None

    def configure_fit(self, server_round, parameters, client_manager):
        """Wait at most ``round-timeout`` for ``min-available-clients`` sites (Flower's own wait is
        a day); with fewer, the round gets no clients and produces no aggregate."""
        deadline = time.monotonic() + self.config.round_timeout
        while client_manager.num_available() < self.min_available_clients:
            if time.monotonic() >= deadline:
                log.warning("round %d: only %d of the %d sites needed are connected",
                            self.start_round + server_round, client_manager.num_available(),
                            self.min_available_clients)
                return []
            time.sleep(min(1.0, self.config.round_timeout))
        return super().configure_fit(server_round, parameters, client_manager)

    def note_failures(self, round_index: int, failures: list[Any]) -> None:
        """Record the sites' policy refusals among ``failures`` (and hand them to the hook)."""
        reasons = [failure_reason(f) for f in failures]
        refused = sorted({r for r in reasons if REFUSAL_PREFIX in r})
        for reason in refused:
            log.warning("round %d: %s", round_index, reason)
            self.refusals.append({"round": round_index, "attempt": self.attempt, "reason": reason})
        if refused and self.on_refusals is not None:
            self.on_refusals(round_index, refused)

    def note_failed_attempt(self, round_index: int, attempt: int) -> None:
        self.failed_attempts.append({"round": round_index, "attempt": attempt})
        if self.on_failed_attempt is not None:
            self.on_failed_attempt(round_index, attempt)

    def norm_bound(self, update: list[np.ndarray]) -> float:
        """Largest L2 norm an honest mean update can have: ``update-clip`` plus twice SecAgg+'s
        worst-case quantisation error (one step per coordinate)."""
        size = sum(u.size for u in update)
        step = 2 * self.config.update_clip / (1 << self.config.quantization_bits)
        return self.config.update_clip * (1 + 1e-6) + 2 * step * float(np.sqrt(size))

    def central_noise_std(self, n_sites: int) -> float:
        return self.config.central_dp_noise * self.config.update_clip / max(1, n_sites)

    def aggregate_fit(self, server_round, results, failures):
        round_index = self.start_round + server_round
        self.note_failures(round_index, list(failures))
        if not results:
            return None, {"failures": len(failures)}
        mean, _ = super().aggregate_fit(server_round, results, failures)
        if mean is None:
            return None, {}
        update = parameters_to_ndarrays(mean)
        self.updates.append([u.copy() for u in update])
        norm = float(np.sqrt(sum(float(np.sum(u.astype(np.float64) ** 2)) for u in update)))
        rejected = not np.isfinite(norm) or norm > self.norm_bound(update)
        if rejected:
            log.warning("round %d: mean update norm %.4g exceeds update-clip %.4g: some site did "
                        "not clip; the round is rejected", round_index, norm,
                        self.config.update_clip)
        else:
            std = self.central_noise_std(len(results))
            if std > 0:
                update = [u + self.rng.normal(0.0, std, u.shape).astype(np.float32)
                          for u in update]
            self.current = [(g + u).astype(np.float32) for g, u in zip(self.current, update)]
        site_metrics = [dict(fit_res.metrics) for _, fit_res in results]
        self.history.append({"round": round_index, "sites": site_metrics, "failures": len(failures),
                             "mean_update_norm": norm, "rejected": rejected})
        if self.on_round is not None:
            self.on_round(round_index, self.current, site_metrics)
        summary = {"sites": len(results), "failures": len(failures)}
        if rejected:
            summary["rejected"] = 1
        return ndarrays_to_parameters(self.current), summary

    def parameters(self) -> Parameters:
        return ndarrays_to_parameters(self.current)
