"""The site's Flower ClientApp: a thin shell around :func:`run_site_round`.

SecAgg+ (``secaggplus_mod``) masks the returned update; the mod is skipped only when the server
runs without secure aggregation (no SecAgg+ stage in the message). In the deployment engine a
fresh process handles every message, and three of SecAgg+'s four stages never train, so torch and
the site's data are imported only when a round actually trains.
"""

from __future__ import annotations

from typing import Any

from flwr.app import Context, Message
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS


class SiteClient(NumPyClient):
    def __init__(self, run_config: dict[str, Any], node_config: dict[str, Any]) -> None:
        self.run_config = run_config
        self.node_config = node_config

    def fit(self, parameters, config):
        from fedcodec.client.federated.site_config import site_config
        from fedcodec.client.federated.site_round import run_site_round

        site = site_config(self.run_config, self.node_config)
        out = run_site_round(site, parameters, int(config.get("server-round", 0)))
        # weight 1: every site counts the same, and no site's record count is revealed
        return out.update, 1, out.metrics

    def evaluate(self, parameters, config):
        """The promotion gate's question: held-out bpp of this candidate and of the promoted model."""
        from fedcodec.client.federated.site_config import site_config
        from fedcodec.client.federated.site_evaluation import evaluate_site

        site = site_config(self.run_config, self.node_config)
        counts = str(self.run_config.get("codec-counts", "shipped"))
        metrics = evaluate_site(site, parameters, config, counts)
        return float(metrics.get("heldout_bpp", 0.0)), 1, metrics


def optional_secaggplus_mod(msg: Message, ctxt: Context, call_next) -> Message:
    """SecAgg+ when the server speaks it, plain messages otherwise."""
    if msg.metadata.message_type == "train" and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def build_client_app(overrides: dict[str, Any] | None = None) -> ClientApp:
    """A ClientApp whose run config is ``context.run_config`` updated by ``overrides``."""

    def client_fn(context: Context):
        run_config = {**dict(context.run_config), **(overrides or {})}
        return SiteClient(run_config, dict(context.node_config)).to_client()

    return ClientApp(client_fn=client_fn, mods=[optional_secaggplus_mod])


app = build_client_app()
