"""The site's Flower ClientApp: a thin shell around :func:`run_site_round`, behind the site's guard.

Every training message first meets :func:`site_guard` (a Flower mod): it loads the site's own
privacy policy (``site-policy.toml`` in its state folder, tightened by the node config) and refuses
the round — an error reply whose reason the coordinator sees, a log line and a line in the site's
``refusals.jsonl`` — when the run config or the round's protocol asks for less (a finer unit, no
DP, no SecAgg+, a larger ε or δ, metrics the site does not report). Only then does SecAgg+
(``secaggplus_mod``) see the message; it masks the returned update. A round without a SecAgg+
stage reaches the client only if the site's policy does not require secure aggregation.

SecAgg+ drop-outs: Flower 1.42's ``secaggplus_mod`` answers the unmask stage with the shares it
holds for every node id the server lists; a site that died before its key shares reached this one
(setup or share-keys stage) is listed as dead but this site holds no share of its key, and the mod
raised ``KeyError: <node id>``. The guard drops such ids from the request first (the coordinator's
workflow, ``server/federated/secagg_workflow.py``, no longer lists them either).

In the deployment engine a fresh process handles every message, and three of SecAgg+'s four
stages never train, so torch and the site's data are imported only when a round actually trains.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flwr.app import Context, Error, Message
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    RECORD_KEY_STATE,
    Key,
    Stage,
)

from fedcodec.client.federated.site_identity import site_identity
from fedcodec.client.federated.site_policy import (
    REFUSAL_PREFIX,
    SiteRefusal,
    allowed_metrics,
    check_run,
    effective_policy,
    log_refusal,
)
from fedcodec.shared.errors import FedcodecError

log = logging.getLogger(__name__)


class SiteClient(NumPyClient):
    def __init__(self, run_config: dict[str, Any], node_config: dict[str, Any]) -> None:
        self.run_config = run_config
        self.node_config = node_config

    def fit(self, parameters, config):
        from fedcodec.client.federated.site_config import site_config
        from fedcodec.client.federated.site_round import run_site_round

        site = site_config(self.run_config, self.node_config)
        out = run_site_round(site, parameters, int(config.get("server-round", 0)), self.run_config)
        # the last gate: only protocol scalars and the optional ones run and policy both allow;
        # weight 1: every site counts the same, and no site's record count is revealed
        return out.update, 1, allowed_metrics(site.policy, self.run_config, out.metrics)

    def evaluate(self, parameters, config):
        """The promotion gate's question: held-out bpp of this candidate and of the promoted model
        (sent only when the run asks for ``heldout_bpp`` and the site's policy allows it)."""
        from fedcodec.client.federated.site_config import site_config
        from fedcodec.client.federated.site_evaluation import evaluate_site

        site = site_config(self.run_config, self.node_config)
        counts = str(self.run_config.get("codec-counts", "shipped"))
        metrics = evaluate_site(site, parameters, config, counts)
        return float(metrics.get("heldout_bpp", 0.0)), 1, metrics


def _error_reply(msg: Message, reason: str) -> Message:
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)


def drop_unshared_ids(msg: Message, ctxt: Context) -> list[int]:
    """Unmask stage: remove the node ids this site holds no share for (they dropped out before
    their shares reached it); returns the removed ids."""
    configs = msg.content.config_records[RECORD_KEY_CONFIGS]
    if configs.get(Key.STAGE) != Stage.UNMASK or RECORD_KEY_STATE not in ctxt.state.config_records:
        return []
    state = ctxt.state.config_records[RECORD_KEY_STATE]
    held = {Key.ACTIVE_NODE_ID_LIST: set(state.get("rd_seed_share_dict:K", [])),
            Key.DEAD_NODE_ID_LIST: set(state.get("sk1_share_dict:K", []))}
    removed: list[int] = []
    for key, known in held.items():
        ids = list(configs.get(key, []))
        kept = [i for i in ids if i in known]
        removed += [i for i in ids if i not in known]
        configs[key] = kept
    return removed


def site_guard(overrides: Mapping[str, Any] | None = None):
    """The mod that enforces the site's policy and makes SecAgg+ survive early drop-outs."""

    def guard(msg: Message, ctxt: Context, call_next) -> Message:
        kind = msg.metadata.message_type
        if kind not in ("train", "evaluate"):  # query or anything else: nothing leaves
            return _error_reply(msg, f"{REFUSAL_PREFIX}: this site answers training and "
                                     f"promotion-gate rounds only, not {kind!r}")
        run_config = {**dict(ctxt.run_config), **dict(overrides or {})}
        round_index = int(msg.metadata.group_id) if msg.metadata.group_id.isdigit() else None
        secagg = RECORD_KEY_CONFIGS in msg.content.config_records
        state_dir = None
        try:
            identity = site_identity(run_config, ctxt.node_config)
            state_dir = identity.state_dir
            policy = effective_policy(identity.state_dir, ctxt.node_config)
            # the gate's evaluate round returns scalars, not an update: SecAgg+ is not its
            # protocol, so only the run's other asks are checked (its metrics again in evaluate)
            check_run(policy, run_config, identity.name, secagg or kind == "evaluate")
            if not secagg:
                return call_next(msg, ctxt)
            removed = drop_unshared_ids(msg, ctxt)
            if removed:
                log.warning("SecAgg+ unmask: %d site(s) dropped out before sharing keys with "
                            "this site; ignoring node id(s) %s", len(removed), removed)
            return secaggplus_mod(msg, ctxt, call_next)
        except SiteRefusal as exc:
            if state_dir is not None:
                log_refusal(state_dir, str(exc), round_index)
            return _error_reply(msg, str(exc))
        except FedcodecError as exc:  # the site's own problem (folder, policy file): one line
            log.error("%s", exc)
            return _error_reply(msg, f"fedcodec site error: {exc}")

    return guard


def build_client_app(overrides: dict[str, Any] | None = None) -> ClientApp:
    """A ClientApp whose run config is ``context.run_config`` updated by ``overrides``."""

    def client_fn(context: Context):
        run_config = {**dict(context.run_config), **(overrides or {})}
        return SiteClient(run_config, dict(context.node_config)).to_client()

    return ClientApp(client_fn=client_fn, mods=[site_guard(overrides)])


app = build_client_app()
