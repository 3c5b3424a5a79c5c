"""Refinement inside the coarse layer's window: what a progressive refinement layer codes.

A pixel whose coarse reconstruction is ``c`` (coded within ``tc``) lies in the window
``[max(0, c - tc), min(maxval, c + tc)]``; the decoder knows it. A refinement layer at the finer
bound ``tau`` cuts that window, from its low end, into bins of ``2 tau + 1`` values (the last one
may be shorter) and codes only the index ``j`` of the bin holding the pixel. Its probability is
the model's distribution over grey levels (the same count tables as lossless coding, the network
run on what is already decoded plus the coarse slice as reference) summed over each bin and
renormalised over the window, so the layered cost is ``-log p(coarse bin) - log p(fine | bin)``,
single-pass cost with a well-calibrated model. A window holding one bin costs nothing.

With nested bounds (``2 tc + 1`` a multiple of ``2 tau + 1``: 13-4-1-0, 40-13-4-0, ...) the fine
bins exactly partition every unclipped coarse bin; other lists still hold every bound (the last
bin is shorter), they only waste a little rate.

Bin masses are integers (the tables' counts, scaled by ``2 ** (MASS_BITS - shift)`` per grey level
so a coarse symbol's ``2 ** shift`` levels and the escape's raw levels weigh what the lossless
coder gives them), below ``2 ** 53``, so the float64 values handed to constriction are exact and
encoder and decoder build the same model on any machine.
"""

from __future__ import annotations

import numpy as np

from fedcodec.shared.neural.tables import ESCAPE, HALF_RANGE, SHIFTS

MASS_BITS = 20
"""Weights per grey level are counts << (MASS_BITS - shift): exact for every shift and bit depth."""
assert int(SHIFTS.max()) <= MASS_BITS


def window(coarse: np.ndarray, coarse_tau: int, maxval: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the grey levels a pixel with coarse reconstruction ``coarse`` can have."""
    coarse = coarse.astype(np.int64)
    return np.maximum(coarse - coarse_tau, 0), np.minimum(coarse + coarse_tau, maxval)


def bin_count(lo: np.ndarray, hi: np.ndarray, tau: int) -> np.ndarray:
    """How many fine bins (``2 tau + 1`` levels, the last maybe shorter) cover [lo, hi]."""
    step = 2 * tau + 1
    return (hi - lo + step) // step


def bin_index(x: np.ndarray, lo: np.ndarray, tau: int) -> np.ndarray:
    """Encoder: the bin of every pixel value ``x`` (in its window)."""
    return (x - lo) // (2 * tau + 1)


def bin_value(lo: np.ndarray, hi: np.ndarray, j: np.ndarray, tau: int) -> np.ndarray:
    """The reconstruction of bin ``j``: its middle, so every value of the bin is within tau."""
    start = lo + j * (2 * tau + 1)
    return (start + np.minimum(start + 2 * tau, hi)) >> 1


def cumulative_counts(counts: np.ndarray) -> np.ndarray:
    """Per table, counts summed below every coarse symbol (0 .. ESCAPE), int64 (keys, 257)."""
    out = np.zeros((counts.shape[0], ESCAPE + 1), dtype=np.int64)
    np.cumsum(counts[:, :ESCAPE], axis=1, out=out[:, 1:])
    return out


def _mass_below(r: np.ndarray, key: np.ndarray, shift: np.ndarray, counts: np.ndarray,
                cumulative: np.ndarray, bits: int) -> np.ndarray:
    """Integer model mass of all residuals below ``r`` (broadcast over columns of ``r``)."""
    low_edge = -HALF_RANGE << shift
    high_edge = HALF_RANGE << shift
    rc = np.clip(r, low_edge, high_edge)
    symbol = (rc - low_edge) >> shift
    within = (rc - low_edge) - (symbol << shift)
    inside = ((cumulative[key, symbol] << MASS_BITS)
              + ((counts[key, np.minimum(symbol, ESCAPE - 1)] * within) << (MASS_BITS - shift)))
    escape = counts[key, ESCAPE] << (MASS_BITS - bits - 1)
    raw_low = -(1 << bits)
    below = escape * np.maximum(np.minimum(r, low_edge) - raw_low, 0)
    above = escape * np.maximum(r - high_edge, 0)
    return below + inside + above


def bin_masses(counts: np.ndarray, cumulative: np.ndarray, key: np.ndarray, shift: np.ndarray,
               base: np.ndarray, lo: np.ndarray, hi: np.ndarray, tau: int, bits: int,
               width: int) -> np.ndarray:
    """(pixels, width) float64: the model's integer mass of every fine bin of each window
    (0 past the window's last bin). Per pixel: ``key`` its table, ``shift`` the table's low
    bits (``SHIFTS[scale bin]``), ``base`` its rounded mean."""
    step = 2 * tau + 1
    edges = np.minimum(lo[:, None] + np.arange(width + 1, dtype=np.int64) * step,
                       hi[:, None] + 1)
    below = _mass_below(edges - base[:, None], key[:, None], shift[:, None], counts, cumulative,
                        bits)
    return np.diff(below, axis=1).astype(np.float64)
