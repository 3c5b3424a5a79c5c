"""One site's part of one federated round, as a plain function the ClientApp and tests call.

In: the global parameters. Out: the clipped model *update* (local minus global, L2 norm at most
``update-clip``), which SecAgg+ masks before it leaves, plus a few scalars (ε spent and its unit,
steps, and the optional metrics both the run asks for and the site's policy allows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcodec.client.federated.dp_training import (
    get_parameters,
    integer_bits,
    set_parameters,
    train_local,
)
from fedcodec.client.federated.site_config import SiteConfig
from fedcodec.client.federated.site_data import SiteData, load_site_cached
from fedcodec.client.federated.site_policy import REFUSAL_PREFIX, SiteRefusal, check_units
from fedcodec.shared.neural.model import predictor_shaped_like
from fedcodec.shared.privacy import PrivacyAccountant


@dataclass
class RoundOutput:
    update: list[np.ndarray]
    metrics: dict[str, float | int | str]


def site_accountant(config: SiteConfig) -> PrivacyAccountant:
    """The site's persisted accountant (one file per privacy unit and δ)."""
    path = config.state_dir / f"privacy-{config.data.unit}.json"
    return PrivacyAccountant(path, config.data.unit, config.target_epsilon, config.delta,
                             config.mechanism)


def load_site_data(config: SiteConfig) -> SiteData:
    return load_site_cached(str(config.data_dir), config.data, config.name,
                            str(config.state_dir / "cache"))


def clip_update(update: list[np.ndarray], max_norm: float) -> tuple[list[np.ndarray], float]:
    """Scale the whole update down to L2 norm ``max_norm``; returns (update, original norm)."""
    norm = float(np.sqrt(sum(float(np.sum(u.astype(np.float64) ** 2)) for u in update)))
    factor = min(1.0, max_norm / norm) if norm > 0 else 1.0
    return [(u * factor).astype(np.float32) for u in update], norm


def refuse_non_finite(arrays: list[np.ndarray], site: str, what: str) -> None:
    """Refuse a round whose parameters hold NaN or infinity.

    A non-finite value in the global model (a broken or hostile coordinator) would train into
    garbage; one in the site's update would poison the aggregate for every site, and SecAgg+ hides
    which site sent it. So the site checks both ends and sends nothing instead."""
    bad = sum(int(np.size(a) - np.count_nonzero(np.isfinite(a))) for a in arrays)
    if bad:
        raise SiteRefusal(f"{REFUSAL_PREFIX}: site {site} refuses the round: {what} has {bad} "
                          "non-finite value(s)")


def run_site_round(config: SiteConfig, global_params: list[np.ndarray], round_index: int,
                   run_config: Mapping[str, Any] | None = None) -> RoundOutput:
    """Train locally from ``global_params`` and return the clipped update and the site's metrics.

    Refuses (:class:`SiteRefusal`) patient-level training below the site's minimum number of
    patients. Only the protocol scalars and the optional metrics in ``config.metrics`` (asked by
    the run and allowed by the site's policy) are returned; once the budget is spent nothing is
    computed on the training units (no ``train_loss``)."""
    site = load_site_data(config)
    check_units(config.policy, config.name, config.data.unit, site.train.n_units,
                run_config or {})
    refuse_non_finite(global_params, config.name, "the coordinator's global model")
    model = predictor_shaped_like(global_params)  # the size the coordinator sends (shipped: 48)
    set_parameters(model, global_params)
    wanted = set(config.metrics)
    metrics: dict[str, float | int | str] = {"site": config.name, "unit": config.data.unit}
    if "heldout_bpp" in wanted:
        metrics["heldout_bpp"] = integer_bits(model, site.heldout)
    accountant = site_accountant(config) if config.train.dp else None
    result = train_local(model, site.train, config.train, accountant, round_index)
    update = [new - old for new, old in zip(get_parameters(model), global_params)]
    refuse_non_finite(update, config.name, "the local update")
    update, norm = clip_update(update, config.update_clip)
    metrics.update(steps=result.steps, budget_exhausted=int(result.budget_exhausted))
    if "update_norm" in wanted:
        metrics["update_norm"] = norm
    if accountant is not None:
        metrics.update(epsilon=accountant.epsilon, delta=accountant.delta,
                       target_epsilon=accountant.target_epsilon)
        if "noise_multiplier" in wanted:
            metrics["noise_multiplier"] = float(result.noise_multiplier or 0.0)
        if "sample_rate" in wanted:
            metrics["sample_rate"] = result.sample_rate
    if "train_loss" in wanted and not result.budget_exhausted:
        metrics["train_loss"] = result.loss
    return RoundOutput(update, metrics)
