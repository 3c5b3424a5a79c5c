"""Integer probability tables for the latents, and the integer scale-index rule.

``y`` symbols ``q = round(y - mean)`` are coded with a zero-mean discretised Gaussian whose scale
is one of ``SCALE_LEVELS`` values spaced ``1/STEPS_PER_OCTAVE`` octave apart; the integer
hyper-synthesis gives ``log2 scale`` in Q8 and :func:`scale_index` maps it to a table with shifts
and a clamp. Table *k* covers ``|q| <= half_width(k)`` plus one escape symbol, after which the
value is sent raw (uniform over ``2 * RAW_HALF`` values). ``z`` symbols use one table per channel
from the learned factorised prior.

All tables are integer counts computed once, when weights are exported (``scipy`` erf/float there
is fine), and stored in the weights file; the decoder hands the same integers to constriction, so
nothing libm computes at decode time can move a probability.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

Q8 = 8
"""Fixed-point fraction bits of the hyper-synthesis outputs (mean, log2 scale)."""
STEPS_PER_OCTAVE = 8
LOG2_SCALE_MIN_Q8 = -816
"""log2(0.11) = -3.18 octaves, in Q8 (the smallest table scale)."""
SCALE_LEVELS = 90
"""Scales 2**(-3.19) .. 2**(7.9): up to ~240 latent units."""
COUNT_TOTAL = 1 << 20
RAW_HALF = 1 << 15
"""Escaped symbols (and all latents) are clamped to [-RAW_HALF, RAW_HALF)."""
Z_HALF = 48
"""z symbols outside [-Z_HALF, Z_HALF] are escaped."""


def table_scale(k: np.ndarray | int) -> np.ndarray:
    """Standard deviation of table ``k``."""
    return np.exp2(LOG2_SCALE_MIN_Q8 / 256.0 + np.asarray(k, dtype=np.float64) / STEPS_PER_OCTAVE)


def half_width(k: int) -> int:
    """Symbols ``-h..h`` have their own entry in table ``k`` (about 8 standard deviations)."""
    return int(max(4, math.ceil(8.0 * float(table_scale(k)))))


def scale_index(log2_scale_q8: np.ndarray) -> np.ndarray:
    """Table index of a Q8 log2 scale: round to the nearest level, clamp (int64 only)."""
    k = ((log2_scale_q8 - LOG2_SCALE_MIN_Q8) * STEPS_PER_OCTAVE + 128) >> Q8
    return np.clip(k, 0, SCALE_LEVELS - 1)


def probabilities_to_counts(p: np.ndarray) -> np.ndarray:
    """Probabilities (last axis) to int64 counts >= 1 summing to COUNT_TOTAL."""
    p = np.maximum(np.asarray(p, dtype=np.float64), 0.0)
    p = p / p.sum(axis=-1, keepdims=True)
    n = p.shape[-1]
    counts = np.maximum(1, np.floor(p * (COUNT_TOTAL - n))).astype(np.int64)
    deficit = COUNT_TOTAL - counts.sum(axis=-1, keepdims=True)
    top = counts.argmax(axis=-1)[..., None]
    np.put_along_axis(counts, top, np.take_along_axis(counts, top, -1) + deficit, -1)
    return counts


def gaussian_counts() -> list[np.ndarray]:
    """Per scale level: counts of symbols ``-h..h`` then the escape symbol."""
    tables = []
    for k in range(SCALE_LEVELS):
        h = half_width(k)
        s = float(table_scale(k))
        edges = (np.arange(-h, h + 2, dtype=np.float64) - 0.5) / s
        cdf = ndtr(edges)
        p = np.empty(2 * h + 2)
        p[:-1] = np.diff(cdf)
        p[-1] = cdf[0] + (1.0 - cdf[-1])
        tables.append(probabilities_to_counts(p))
    return tables


def z_counts(cdf_at_edges: np.ndarray) -> np.ndarray:
    """(channels, 2*Z_HALF+2) counts from the prior's CDF at ``-Z_HALF-0.5 .. Z_HALF+0.5``."""
    cdf = np.asarray(cdf_at_edges, dtype=np.float64)
    p = np.empty((cdf.shape[0], 2 * Z_HALF + 2))
    p[:, :-1] = np.diff(cdf, axis=1)
    p[:, -1] = cdf[:, 0] + (1.0 - cdf[:, -1])
    return probabilities_to_counts(p)
