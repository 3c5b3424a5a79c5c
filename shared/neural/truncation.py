"""Residual tables truncated to the slice's value range (bounded-range slices, stream 0xA8).

Why: the count tables are shared by every pixel with the same scale bin and phase, so they give
probability to residuals that would put the pixel below the slice's minimum or above its
maximum. MR magnitude images sit on a floor (background masked to zero, or signed data shifted
so that zero is 32768) that the network cannot know; a pixel predicted just above the floor
wastes the mass below it. The encoder writes the slice's minimum and maximum into the stream;
both sides then drop the impossible coarse symbols of every pixel whose table loses at least
``MIN_EXCLUDED`` of its mass, and renormalise. Near-lossless, the symbol is the quantised
index, and the caller passes the indices of the range's ends (``slice_coder._room``).

Everything here is integer arithmetic on the count tables, so encoder and decoder select the
same pixels and build the same truncated tables; ``constriction`` then quantises them
deterministically, as it does the plain tables. Each (table, cut) is one cached Categorical
and one run of the group's coder calls (decoding 6 GE T1 slices: 0.24 -> 0.32 s); coding the
truncated pixels instead as one categorical per pixel, in chunks of float rows, was slower
(0.56 s).
"""

from __future__ import annotations

import numpy as np

from fedcodec.shared.neural.tables import COUNT_TOTAL, ESCAPE, HALF_RANGE

TRUNCATED = 1 << 40
"""Sort keys at or above this name a truncated table; below it, a plain table index."""
NEAR_SYMBOLS = 48
"""Only pixels whose range end lies within this many coarse symbols of the prediction are
examined (the tables' coarse scale is at most 16 symbols, so farther ends cut a tail of well
under 1/64); the rest keep their plain table without the per-pixel lookups."""
MIN_EXCLUDED = COUNT_TOTAL >> 6
"""A pixel's table is truncated only when at least 1/64 of its mass is impossible (a smaller
cut saves < 0.023 bits and would only add tables)."""


def cumulative(counts: np.ndarray) -> np.ndarray:
    """(tables, ALPHABET + 1) int64: column j is the count of symbols below j."""
    out = np.zeros((counts.shape[0], counts.shape[1] + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=out[:, 1:])
    return out


def _cut(counts: np.ndarray, cum: np.ndarray, key: np.ndarray, shift: np.ndarray,
         t_lo: np.ndarray, t_hi: np.ndarray):
    """Per pixel: first and one-past-last possible coarse symbol, whether an escape is
    possible, and the count of the impossible symbols."""
    raw_lo = (t_lo >> shift) + HALF_RANGE
    raw_hi = (t_hi >> shift) + HALF_RANGE
    s_lo = np.clip(raw_lo, 0, ESCAPE)
    s_end = np.clip(raw_hi + 1, 0, ESCAPE)
    escape = (raw_lo < 0) | (raw_hi >= ESCAPE)
    excluded = (cum[key, s_lo] + (cum[key, ESCAPE] - cum[key, s_end])
                + np.where(escape, 0, counts[key, ESCAPE]))
    return s_lo, s_end, escape, excluded


def sort_keys(counts: np.ndarray, cum: np.ndarray, key: np.ndarray, shift: np.ndarray,
              t_lo: np.ndarray, t_hi: np.ndarray) -> np.ndarray | None:
    """Each pixel's table as a sort key (plain index, or ``TRUNCATED`` + its cut); None when no
    pixel's table loses ``MIN_EXCLUDED`` (then the plain tables are used unchanged).

    ``t_lo``/``t_hi``: the lowest and highest residual the pixel can have (range - prediction).
    """
    near = np.flatnonzero(((-t_lo) >> shift < NEAR_SYMBOLS) | (t_hi >> shift < NEAR_SYMBOLS))
    if not near.size:
        return None
    key_near = key[near]
    s_lo, s_end, escape, excluded = _cut(counts, cum, key_near, shift[near], t_lo[near],
                                         t_hi[near])
    cut = excluded >= MIN_EXCLUDED
    if not cut.any():
        return None
    out = key.astype(np.int64, copy=True)
    out[near[cut]] = TRUNCATED + ((((key_near[cut] << 9) | s_lo[cut]) << 9 | s_end[cut]) << 1
                                  | escape[cut])
    return out


def probabilities(counts: np.ndarray, composite: int) -> np.ndarray:
    """The truncated table a sort key names, as float64 counts (impossible symbols at 0)."""
    value = composite - TRUNCATED
    escape, s_end, s_lo, key = value & 1, (value >> 1) & 511, (value >> 10) & 511, value >> 19
    row = counts[key].astype(np.float64)
    row[:s_lo] = 0.0
    row[s_end:ESCAPE] = 0.0
    if not escape:
        row[ESCAPE] = 0.0
    return row


def gain_bits(counts: np.ndarray, cum: np.ndarray, key: np.ndarray, shift: np.ndarray,
              t_lo: np.ndarray, t_hi: np.ndarray) -> float:
    """Bits truncation saves on these pixels (encoder-side estimate: every truncated pixel's
    coded symbol gains log2 of its table's total over what is left)."""
    near = ((-t_lo) >> shift < NEAR_SYMBOLS) | (t_hi >> shift < NEAR_SYMBOLS)
    key, shift, t_lo, t_hi = key[near], shift[near], t_lo[near], t_hi[near]
    excluded = _cut(counts, cum, key, shift, t_lo, t_hi)[3]
    cut = excluded >= MIN_EXCLUDED
    if not cut.any():
        return 0.0
    total = cum[key[cut], -1].astype(np.float64)
    return float(np.log2(total / (total - excluded[cut])).sum())
