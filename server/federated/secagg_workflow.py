"""SecAgg+ that survives a site lost at any stage (Flower 1.42's ``SecAggPlusWorkflow``, patched).

The bug (flwr 1.42, ``SecAggPlusWorkflow.unmask_stage`` + ``secaggplus_mod._unmask``): the unmask
request lists as *dead* every sampled node that is no longer active, including nodes lost in the
setup or share-keys stage. Their encrypted key shares never reached the survivors (the server only
forwards shares of nodes that answered share-keys), so each survivor's ``_unmask`` looks up
``sk1_share_dict[<node id>]`` and raises ``KeyError: <node id>``; and the server itself would try
to rebuild that node's pairwise masks although no survivor ever added them (the mod only masks
with nodes whose shares it received).

The fix: after the setup and share-keys stages, nodes that did not answer are *forgotten* — taken
out of the sampled set and out of every neighbourhood — exactly as if they had never been sampled.
A node lost in the collect-masked-vectors stage (after its shares were forwarded) is still treated
as dead and its masks are rebuilt from its neighbours' shares; a node lost while unmasking is
covered by the threshold. ``last_failures`` keeps the failures of the last attempt (refusal
reasons included) even when the protocol halts, so the coordinator can log them.
"""

from __future__ import annotations

import logging

from flwr.server.workflow import SecAggPlusWorkflow

log = logging.getLogger(__name__)


class DropoutTolerantSecAggPlus(SecAggPlusWorkflow):
    """:class:`SecAggPlusWorkflow` that forgets nodes lost before their key shares were sent."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_failures: list[BaseException] = []

    def __call__(self, grid, context) -> None:
        self.last_failures = []
        super().__call__(grid, context)

    def _forget_lost(self, state) -> None:
        lost = set(state.sampled_node_ids) - set(state.active_node_ids)
        if not lost:
            return
        log.warning("SecAgg+: %d site(s) lost before sharing keys; continuing without them", len(lost))
        kept = set(state.active_node_ids)
        state.sampled_node_ids = set(kept)
        state.nid_to_neighbours = {nid: neighbours & kept
                                   for nid, neighbours in state.nid_to_neighbours.items()
                                   if nid in kept}

    def _after(self, state, ok: bool, forget: bool) -> bool:
        self.last_failures = list(state.failures)
        if ok and forget:
            self._forget_lost(state)
            return self._check_threshold(state)
        return ok

    def setup_stage(self, grid, context, state) -> bool:
        return self._after(state, super().setup_stage(grid, context, state), forget=True)

    def share_keys_stage(self, grid, context, state) -> bool:
        return self._after(state, super().share_keys_stage(grid, context, state), forget=True)

    def collect_masked_vectors_stage(self, grid, context, state) -> bool:
        return self._after(state, super().collect_masked_vectors_stage(grid, context, state),
                           forget=False)

    def unmask_stage(self, grid, context, state) -> bool:
        """Flower's unmasking, with a failed secret reconstruction as a halted attempt.

        Under load (measured: the suite on a 2-core machine with two trainings beside it) a
        share list can fail to combine (``ValueError: Failed to combine shares``, flwr's
        ``combine_shares``); that escaped the workflow and crashed the ServerApp. Nothing was
        unmasked, so it is handled like a round below threshold: no aggregate, this attempt's
        failure recorded, and :class:`RetryingFit` runs the round again with fresh keys.
        """
        try:
            ok = super().unmask_stage(grid, context, state)
        except ValueError as exc:
            log.warning("SecAgg+: unmasking failed (%s); this attempt produces no aggregate", exc)
            state.failures.append(exc)
            ok = False
        return self._after(state, ok, forget=False)
