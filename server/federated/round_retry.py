"""A federated round either aggregates or is retried; a round that never does stops the run.

Flower's ``DefaultWorkflow`` moves on to the next round when a fit round produced no aggregate
(SecAgg+ halted below its threshold, every site refused or failed), and the run still ends
"successfully". :class:`RetryingFit` wraps the fit stage: a round that did not reach the strategy's
``aggregate_fit`` is run again (fresh SecAgg+ keys) up to ``retries`` times; then
:class:`RoundFailed` propagates out of the ServerApp, the MLflow run ends ``FAILED``, no model is
registered, and ``federation run`` / ``simulate`` exit non-zero. The checkpoint keeps the last
aggregated round, so rerunning resumes there.

Privacy cost of an aborted attempt: a site charges its accountant before it trains (collect-
masked-vectors stage), so a site that trained in an attempt that never unmasked has spent that ε
although its update was never used (``fedcodec privacy status`` counts such retried rounds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fedcodec.shared.errors import FedcodecError

log = logging.getLogger(__name__)


class RoundFailed(FedcodecError):
    """A round that did not aggregate after its retries; the run stops."""


class RetryingFit:
    """Fit stage for ``DefaultWorkflow(fit_workflow=...)`` that retries a round without aggregate."""

    def __init__(self, inner: Callable[[Any, Any], None], strategy, retries: int) -> None:
        self.inner = inner
        self.strategy = strategy
        self.retries = max(0, int(retries))

    def __call__(self, grid, context) -> None:
        from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, Key

        server_round = int(context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND])
        round_index = self.strategy.start_round + server_round
        for attempt in range(1, self.retries + 2):
            done_before = len(self.strategy.history)
            self.strategy.attempt = attempt
            self.inner(grid, context)
            if len(self.strategy.history) > done_before:
                return
            failures = getattr(self.inner, "last_failures", None)
            if failures:  # SecAgg+ halted before aggregate_fit saw them
                self.strategy.note_failures(round_index, failures)
            self.strategy.note_failed_attempt(round_index, attempt)
            if attempt <= self.retries:
                log.warning("round %d produced no aggregate (attempt %d of %d); retrying",
                            round_index, attempt, self.retries + 1)
        raise RoundFailed(f"round {round_index} produced no aggregate in {self.retries + 1} "
                          f"attempt(s) (sites lost or refusing; see the MLflow run's refusals); "
                          f"the run stops, no model is registered")
