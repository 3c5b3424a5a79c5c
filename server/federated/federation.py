"""One federated training run on the server: the plain function the ServerApp calls.

Flow: load the checkpoint (if any) -> open (or reopen) the MLflow run -> run the remaining rounds
through Flower's legacy workflow with SecAgg+ as the fit stage and the promotion gate as the
evaluate stage -> after every round checkpoint and log -> finally quantise the *promoted* model to
the codec's integer weights, log and register it (nothing is registered when no round beat the
starting weights; ``promotion-gate = false`` publishes the last round's model instead).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fedcodec.server.federated.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.server.federated.gated_strategy import GatedUpdateAveraging
from fedcodec.server.federated.initial_weights import initial_predictor
from fedcodec.server.federated.promotion import PromotionGate
from fedcodec.server.federated.round_retry import RetryingFit
from fedcodec.server.federated.strategy import UpdateAveraging
from fedcodec.server.federated.tracking import FederationTracker
from fedcodec.shared.neural.model import NeuralPredictor, clamp_parameters, to_integer
from fedcodec.shared.neural.named_counts import named_counts

log = logging.getLogger(__name__)


def initial_model(config: FederationConfig) -> NeuralPredictor:
    """The model round 1 starts from (the shipped weights unless ``initial-weights`` says else)."""
    return initial_predictor(config)


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
    start_params = model_arrays(model)
    params = checkpoint.parameters if checkpoint else start_params
    gate = PromotionGate(config.checkpoint_path.parent, start_params, config.promotion_gate,
                         config.promotion_min_gain)
    tracker = FederationTracker(config.tracking_uri(), config.mlflow_experiment, config.run_name,
                                checkpoint.mlflow_run_id if checkpoint else "",
                                artifact_dir=config.artifact_dir())
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
            if config.promotion_gate:
                strategy = GatedUpdateAveraging(config, params, start, gate, on_round,
                                                tracker.log_promotion)
            else:
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
        if config.promotion_gate:
            published, published_round = gate.promoted, gate.promoted_round
        else:
            published, published_round = params, config.num_rounds
        tracker.log_promotion_log(gate.log_path)
        if published_round == 0:
            log.warning("no round improved the held-out bpp of the starting weights: nothing "
                        "published (decisions in %s)", gate.log_path)
        else:
            final = load_arrays(initial_model(config), published)
            clamp_parameters(final)
            weights = to_integer(final, named_counts(config.codec_counts),
                                 {"name": "federated", "run": tracker.run_id,
                                  "rounds": config.num_rounds, "promoted_round": published_round,
                                  "initial_weights": config.initial_weights})
            weights_file = config.checkpoint_path.parent / "neural_federated.npz"
            weights.save(weights_file)
            if config.log_model:
                tracker.log_final_model(final, weights_file, config.register_model,
                                        {"promoted_round": str(published_round),
                                         "codec_model_id": weights.model_id.hex()})
        status = "FINISHED"
    finally:
        tracker.end(status)
    return strategy
