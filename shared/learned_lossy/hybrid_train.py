"""Training the hybrid mode's residual coder: the ``neural`` networks with the base as reference.

The ``neural`` codec's one-reference networks were made for the previous slice; here the
reference is the JPEG 2000 base layer of the same slice, which is far closer, so those networks
are refitted on (slice, base) pairs through the ``neural`` package's own public training
functions: each training slice becomes a two-slice "volume" ``[base, slice]``, so
``collect_samples`` sees the base exactly where the codec will (reference offset 1). The
no-reference networks (used only for images too small for a base) are fitted on the slices alone;
the count tables on this codec's own residuals at the target tau. Only the training pairs are
ours; features, networks, quantisation and tables are ``neural``'s, so the two codecs stay one
machine. The base's PSNR target is drawn per slice from ``base_levels_db`` so the networks learn
how far to trust every base quality the encoder may choose.
"""

from __future__ import annotations

from collections.abc import Sequence

import imagecodecs
import numpy as np
from fedcodec.shared.learned_lossy.hybrid import encode_base
from fedcodec.shared.neural.model import to_integer
from fedcodec.shared.neural.tables import logistic_counts
from fedcodec.shared.neural.train import Samples, collect_samples, fit_tables, train_predictor
from fedcodec.shared.neural.weights import NeuralWeights

BASE_REFS = 1
"""The hybrid coder passes exactly one reference (the base), so only these networks are fitted."""


def base_pairs(slices: Sequence[tuple[np.ndarray, int]], base_levels_db: Sequence[float],
               seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """``(stack([base, slice]), bits)`` per slice, with a random base quality each."""
    rng = np.random.default_rng(seed)
    out = []
    for image, bits in slices:
        level_db = float(base_levels_db[rng.integers(len(base_levels_db))])
        base = imagecodecs.jpeg2k_decode(encode_base(image, bits, level_db), numthreads=1)
        out.append((np.stack([base.astype(image.dtype), image]), bits))
    return out


def _refs_of(key: str) -> int:
    return int(key[-1])


def collect_hybrid_samples(slices: Sequence[tuple[np.ndarray, int]],
                           base_levels_db: Sequence[float], seed: int = 0) -> dict[str, Samples]:
    """One-reference samples with the base as reference, no-reference samples of the slices."""
    with_base = collect_samples(base_pairs(slices, base_levels_db, seed), seed=seed,
                                progress=False)
    alone = collect_samples([(image[None], bits) for image, bits in slices], seed=seed,
                            progress=False)
    return {key: (with_base[key] if _refs_of(key) == BASE_REFS else
                  alone[key] if _refs_of(key) == 0 else Samples())
            for key in with_base}


def train_hybrid_weights(samples: dict[str, Samples], meta: dict, tau: int, epochs: int = 12,
                         budget_s: float = 600.0) -> tuple[NeuralWeights, dict[str, float]]:
    """Fit the networks that have samples (no reference, base reference), tables at ``tau``.

    The two-reference networks get no samples and stay at their zero-output start (the hybrid
    coder never uses them); the weights file still holds them because ``neural`` loads all keys.
    """
    model, report = train_predictor(samples, epochs=epochs, time_budget_s=budget_s)
    weights = to_integer(model, logistic_counts(), meta)
    counts = fit_tables(weights, samples, taus=(tau,))
    return NeuralWeights(weights.nets, counts, meta), report
