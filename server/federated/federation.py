"""One federated training run on the server: the plain function the ServerApp calls.

Flow: load the checkpoint (if any) -> open (or reopen) the MLflow run -> run the remaining rounds
through Flower's legacy workflow with SecAgg+ as the fit stage -> after every round checkpoint
and log -> finally quantise the model to the codec's integer weights, log and register it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fedcodec.server.federated.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.server.federated.round_retry import RetryingFit
from fedcodec.server.federated.strategy import UpdateAveraging
from fedcodec.server.federated.tracking import FederationTracker
from fedcodec.shared.neural.model import NeuralPredictor, clamp_parameters, to_integer
from fedcodec.shared.neural.tables import logistic_counts

log = logging.getLogger(__name__)


def initial_model(config: FederationConfig) -> NeuralPredictor:
    torch.manual_seed(config.seed)
    return NeuralPredictor(config.hidden, config.depth)


def model_arrays(model: NeuralPredictor) -> list[np.ndarray]:
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def load_arrays(model: NeuralPredictor, arrays: list[np.ndarray]) -> NeuralPredictor:
    model.load_state_dict({k: torch.from_numpy(np.asarray(a, dtype=np.float32))
                           for k, a in zip(model.state_dict(), arrays)})
    return model


def _global_metrics(site_metrics: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {"sites": float(len(site_metrics))}
    bpp = [float(m["heldout_bpp"]) for m in site_metrics if "heldout_bpp" in m]
    if bpp:
        out["heldout_bpp_mean"] = float(np.mean(bpp))
    eps = [float(m["epsilon"]) for m in site_metrics if "epsilon" in m]
    if eps:
        out["epsilon_max"] = float(max(eps))
    return out


def fit_workflow(config: FederationConfig):
    """SecAgg+ as the fit stage (default; tolerant of sites lost at any stage), or Flower's plain
    fit workflow."""
    if not config.secagg:
        from flwr.server.workflow.default_workflows import default_fit_workflow

        return default_fit_workflow
    from fedcodec.server.federated.secagg_workflow import DropoutTolerantSecAggPlus

    return DropoutTolerantSecAggPlus(
        num_shares=config.secagg_shares,
        reconstruction_threshold=config.secagg_threshold,
        max_weight=1.0,
        clipping_range=config.update_clip,
        quantization_range=1 << config.quantization_bits,
        timeout=config.round_timeout,
    )


def run_federation(grid, context, overrides: Mapping[str, Any] | None = None) -> UpdateAveraging | None:
    """Run the rounds left in this federation on ``grid``; returns the strategy (tests read it)."""
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow

    run_config = {**dict(context.run_config), **dict(overrides or {})}
    config = FederationConfig.from_run_config(run_config)
    checkpoint = load_checkpoint(config.checkpoint_path)
    start = checkpoint.round if checkpoint else 0
    model = initial_model(config)
    params = checkpoint.parameters if checkpoint else model_arrays(model)
    tracker = FederationTracker(config.tracking_uri(), config.mlflow_experiment, config.run_name,
                                checkpoint.mlflow_run_id if checkpoint else "")
    tracker.log_params(run_config)
    if start:
        log.info("resuming federation from round %d (checkpoint %s)", start, config.checkpoint_path)

    def on_round(round_index: int, current: list[np.ndarray], site_metrics: list[dict]) -> None:
        save_checkpoint(config.checkpoint_path, Checkpoint(round_index, current, tracker.run_id))
        tracker.log_round(round_index, site_metrics, _global_metrics(site_metrics))

    strategy = None
    status = "FAILED"
    try:
        if config.num_rounds > start:
            strategy = UpdateAveraging(config, params, start, on_round)
            strategy.on_refusals = tracker.log_refusals
            strategy.on_failed_attempt = tracker.log_failed_attempt
            legacy = LegacyContext(context=context,
                                   config=ServerConfig(num_rounds=config.num_rounds - start,
                                                       round_timeout=config.round_timeout),
                                   strategy=strategy)
            fit = RetryingFit(fit_workflow(config), strategy, config.round_retries)
            DefaultWorkflow(fit_workflow=fit)(grid, legacy)
            params = strategy.current
        final = load_arrays(initial_model(config), params)
        clamp_parameters(final)
        weights = to_integer(final, logistic_counts(), {"name": "federated", "run": tracker.run_id,
                                                        "rounds": config.num_rounds})
        weights_file = config.checkpoint_path.parent / "neural_federated.npz"
        weights.save(weights_file)
        if config.log_model:
            tracker.log_final_model(final, weights_file, config.register_model)
        status = "FINISHED"
    finally:
        tracker.end(status)
    return strategy
