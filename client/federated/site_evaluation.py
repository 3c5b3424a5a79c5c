"""A site's answer to the promotion gate: held-out bits/pixel of the round's candidate and of the
currently promoted model, on the site's held-out series only (never trained on).

Both are coded the way the published codec would code them: quantised networks and the count
tables the run publishes with (``codec-counts``). What leaves the site: two bits/pixel figures and
the number of held-out pixels they were measured on (the gate weights sites by it); nothing unless
both the run asks for ``heldout_bpp`` and the site's policy allows it (``config.metrics``): the gate
then cannot promote with this site's vote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedcodec.client.federated.dp_training import set_parameters
from fedcodec.client.federated.site_config import SiteConfig
from fedcodec.client.federated.site_round import load_site_data
from fedcodec.client.federated.unit_samples import UnitSamples
from fedcodec.shared.neural.model import predictor_shaped_like, to_integer
from fedcodec.shared.neural.named_counts import named_counts
from fedcodec.shared.neural.parameter_bytes import bytes_to_arrays
from fedcodec.shared.neural.train import estimated_bits


def heldout_bits(arrays: list[np.ndarray], samples: UnitSamples, counts: np.ndarray) -> tuple[float, int]:
    """(bits/pixel, pixels) of every sampled held-out pixel under the quantised ``arrays``."""
    model = predictor_shaped_like(arrays)
    set_parameters(model, arrays)
    weights = to_integer(model, counts, {"name": "candidate"})
    total, count = 0.0, 0
    for key, pool in samples.pools.items():
        n = int(pool.counts.sum())
        if n:
            total += estimated_bits(weights, pool.arrays, key) * n
            count += n
    return (total / count if count else float("nan")), count


def evaluate_site(config: SiteConfig, candidate: list[np.ndarray], round_config: Mapping[str, Any],
                  counts_name: str) -> dict[str, float | int | str]:
    """The metrics one site returns to the gate for one round."""
    metrics: dict[str, float | int | str] = {"site": config.name}
    if "heldout_bpp" not in config.metrics or "promoted" not in round_config:
        return metrics
    site = load_site_data(config)
    counts = named_counts(counts_name)
    bpp, pixels = heldout_bits(candidate, site.heldout, counts)
    promoted_bpp, _ = heldout_bits(bytes_to_arrays(bytes(round_config["promoted"])), site.heldout,
                                   counts)
    if pixels:
        metrics.update(heldout_bpp=bpp, promoted_bpp=promoted_bpp, heldout_pixels=pixels)
    return metrics
