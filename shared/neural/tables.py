"""Residual distributions as constant integer tables, one per (scale bin, sub-pixel phase).

The network gives each pixel a mean (in 1/8 grey levels) and ``log2`` of a scale. The scale is
quantised to ``BINS_PER_OCTAVE`` bins per octave; the residual ``t = x - round(mean)`` is split
into a coarse symbol ``t >> shift`` (``shift`` chosen per bin so the coarse symbol has a scale of
8..16) coded with the bin's table, and ``shift`` low bits coded uniformly (their density is flat to
within a few thousandths of a bit). Coarse symbols outside ``[-HALF_RANGE, HALF_RANGE)`` become an
escape symbol followed by the raw residual. For small scales the fractional part of the mean
matters, so those bins have one table per eighth of a grey level ("phase").

The tables are integer counts stored in the weights file (fitted to training residuals, see
``train.fit_tables``); :func:`logistic_counts` gives the parametric starting point. The decoder
hands the same integers to ``constriction``, whose quantisation is deterministic, so the coder's
probabilities never depend on libm.
"""

from __future__ import annotations

import math

import numpy as np

BINS_PER_OCTAVE = 6
LOG2_SCALE_MIN = -4
N_BINS = BINS_PER_OCTAVE * 21
HALF_RANGE = 128
ALPHABET = 2 * HALF_RANGE + 1
ESCAPE = 2 * HALF_RANGE
PHASES = 8
CENTRE_PHASE = 4
COUNT_TOTAL = 1 << 20


def bin_log2_centre(k: np.ndarray | int) -> np.ndarray | float:
    """log2 of the scale at the centre of bin ``k``."""
    return LOG2_SCALE_MIN + (np.asarray(k) + 0.5) / BINS_PER_OCTAVE


SHIFTS = np.maximum(0, np.floor(bin_log2_centre(np.arange(N_BINS))).astype(np.int64) - 3)
"""Low bits coded uniformly, per bin."""

PHASED = (SHIFTS == 0) & (bin_log2_centre(np.arange(N_BINS)) < 2.0)
"""Bins whose table depends on the sub-pixel phase of the mean."""


def scale_bin(log2_scale_q6: np.ndarray) -> np.ndarray:
    """Bin index of a Q6 log2 scale (int64 in, int64 out, clamped to the table range)."""
    k = ((log2_scale_q6 - LOG2_SCALE_MIN * 64) * BINS_PER_OCTAVE) >> 6
    return np.clip(k, 0, N_BINS - 1)


def table_key(k: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Index of the table for bin ``k`` and phase (phase ignored where it does not matter)."""
    return k * PHASES + np.where(PHASED[k], phase, CENTRE_PHASE)


def _logistic_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def coarse_edges(k: int) -> np.ndarray:
    """Residual-space edges (continuous) of the coarse symbols of bin ``k``: 2*HALF_RANGE+1."""
    step = 1 << int(SHIFTS[k])
    return np.arange(-HALF_RANGE, HALF_RANGE + 1, dtype=np.float64) * step - 0.5


def probabilities_to_counts(p: np.ndarray) -> np.ndarray:
    """Float probabilities (last axis = ALPHABET) to integer counts >= 1 summing to COUNT_TOTAL."""
    p = np.maximum(np.asarray(p, dtype=np.float64), 0.0)
    p = p / p.sum(axis=-1, keepdims=True)
    counts = np.maximum(1, np.floor(p * (COUNT_TOTAL - ALPHABET)).astype(np.int64))
    deficit = COUNT_TOTAL - counts.sum(axis=-1)
    top = counts.argmax(axis=-1)
    np.put_along_axis(counts, top[..., None],
                      np.take_along_axis(counts, top[..., None], -1) + deficit[..., None], -1)
    return counts


def logistic_counts() -> np.ndarray:
    """(N_BINS * PHASES, ALPHABET) counts of a discretised logistic with the bin's scale.

    Used before tables are fitted to data, and as the prior the fitted tables are smoothed with.
    """
    out = np.zeros((N_BINS * PHASES, ALPHABET), dtype=np.int64)
    for k in range(N_BINS):
        sigma = 2.0 ** float(bin_log2_centre(k))
        s = sigma * math.sqrt(3.0) / math.pi
        edges = coarse_edges(k)
        for phase in range(PHASES):
            centre = (phase - CENTRE_PHASE) / PHASES if PHASED[k] else 0.0
            cdf = _logistic_cdf((edges - centre) / s)
            p = np.empty(ALPHABET)
            p[:ESCAPE] = np.diff(cdf)
            p[ESCAPE] = cdf[0] + (1.0 - cdf[-1])
            out[k * PHASES + phase] = probabilities_to_counts(p)
    return out
