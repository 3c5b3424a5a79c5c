"""Refinement inside the coarse layer's window: what a progressive refinement layer codes.

A pixel whose coarse reconstruction is ``c`` (coded within ``tc``) lies in the window
``[max(0, c - tc), min(maxval, c + tc)]``; the decoder knows it. A refinement layer at the finer
bound ``tau`` codes only which cell of ``2 tau + 1`` levels holds the pixel, among the cells that
meet the window (cut to it at its ends), counted from the first. Its probability is the model's
distribution over grey levels (the lossless count tables, the network run on what is already
decoded) summed over each cell's part of the window and renormalised, so the layered cost is
``-log p(coarse bin) - log p(fine | bin)``. A window that one cell covers costs nothing; the
reconstruction is the middle of the cell's part of the window, within tau of all of it.

Two cell layouts, chosen per slice by the encoder (a bit in the stream): a grid from the window's
start (``anchor = lo + tau``; with nested bounds, ``2 tc + 1`` a multiple of ``2 tau + 1`` as in
13-4-1-0 or 40-13-4-0, it partitions every unclipped coarse bin exactly), or cells centred on
the model's rounded mean (``anchor = round(mean)``, single-pass ``neural:tau=TAU`` cells cut to
the window). Measured, 13-4 on one run of 4 slices: the grid 1.015x single pass on philips-dwi
(centred 1.067x), centred 1.107x on enhanced MR (grid 1.439x): a sharp model loses up to a bit
where a grid edge splits its peak, a noisy one pays for the cut cells at both ends. For the
final lossless layer (tau 0) the layouts are the same.

A refinement may instead weigh its bins with the model's near-lossless tables for its tau
(``NeuralWeights.table_bound``; a 0xA9 stream), fitted to cells of ``2 tau + 1`` levels coded
with contexts that are themselves within tau, which is what a refinement layer's network sees:
each cell's mass spread evenly over its levels. The encoder codes both and keeps the shorter.

Bin masses are integers (the tables' counts, scaled by ``2 ** (MASS_BITS - shift)`` per grey level
so a coarse symbol's ``2 ** shift`` levels and the escape's raw levels weigh what the lossless
coder gives them), below ``2 ** 53``, so the float64 values handed to constriction are exact and
encoder and decoder build the same model on any machine.
"""

from __future__ import annotations

import numpy as np

from fedcodec.shared.neural.stream_format import MAX_CELL_WINDOW_TAU
from fedcodec.shared.neural.tables import ESCAPE, HALF_RANGE, SHIFTS

MASS_BITS = 20
"""Weights per grey level are counts << (MASS_BITS - shift): exact for every shift and bit depth."""
assert int(SHIFTS.max()) <= MASS_BITS


def window(coarse: np.ndarray, coarse_tau: int, maxval: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the grey levels a pixel with coarse reconstruction ``coarse`` can have."""
    coarse = coarse.astype(np.int64)
    return np.maximum(coarse - coarse_tau, 0), np.minimum(coarse + coarse_tau, maxval)


def first_cell(anchor: np.ndarray, lo: np.ndarray, tau: int) -> np.ndarray:
    """The lowest cell ``t`` (levels ``anchor + t step - tau .. anchor + t step + tau``) that
    reaches into the window starting at ``lo``."""
    return -((anchor + tau - lo) // (2 * tau + 1))


def bin_count(anchor: np.ndarray, lo: np.ndarray, hi: np.ndarray, tau: int) -> np.ndarray:
    """How many cells of ``2 tau + 1`` levels centred on ``anchor + t step`` meet [lo, hi]."""
    return (hi - anchor + tau) // (2 * tau + 1) - first_cell(anchor, lo, tau) + 1


def bin_index(x: np.ndarray, anchor: np.ndarray, lo: np.ndarray, tau: int) -> np.ndarray:
    """Encoder: the bin (cell counted from the window's first) of every pixel value ``x``."""
    return (x - anchor + tau) // (2 * tau + 1) - first_cell(anchor, lo, tau)


def _edge(anchor: np.ndarray, lo: np.ndarray, hi: np.ndarray, j: np.ndarray, tau: int
          ) -> np.ndarray:
    """Lowest level of bin ``j`` inside the window (``hi + 1`` past the last bin)."""
    start = anchor + (first_cell(anchor, lo, tau) + j) * (2 * tau + 1) - tau
    return np.clip(start, lo, hi + 1)


def bin_value(anchor: np.ndarray, lo: np.ndarray, hi: np.ndarray, j: np.ndarray, tau: int
              ) -> np.ndarray:
    """The reconstruction of bin ``j``: the middle of its part of the window (at most
    ``2 tau + 1`` levels), so every value of the bin is within tau."""
    return (_edge(anchor, lo, hi, j, tau) + _edge(anchor, lo, hi, j + 1, tau) - 1) >> 1


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


MAX_CELL_TAU = MAX_CELL_WINDOW_TAU
"""Refinement bounds whose bins may be weighed with near-lossless tables: a level's mass is then
a cell's mass times up to ``2 tau + 1``, and every mass must stay below ``2 ** 53``."""


def _cell_mass_below(r: np.ndarray, key: np.ndarray, shift: np.ndarray, counts: np.ndarray,
                     cumulative: np.ndarray, bits: int, tau: int) -> np.ndarray:
    """:func:`_mass_below` for tables over near-lossless cells (``2 tau + 1`` levels each,
    cell 0 centred on the rounded mean), each cell's mass spread evenly over its levels: the
    distribution ``neural:tau=TAU`` codes with, over grey levels, times ``2 tau + 1``."""
    step = 2 * tau + 1
    cell = (r + tau) // step
    within = r + tau - cell * step
    low = _mass_below(cell, key, shift, counts, cumulative, bits)
    high = _mass_below(cell + 1, key, shift, counts, cumulative, bits)
    return step * low + within * (high - low)


def chosen_and_total(counts: np.ndarray, cumulative: np.ndarray, key: np.ndarray,
                     shift: np.ndarray, base: np.ndarray, anchor: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray, j: np.ndarray, tau: int, bits: int, cells: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The integer mass of bin ``j`` of each window and of the whole window (as
    :func:`bin_masses` sums them), from four edges a pixel rather than one per bin: the
    encoder's cost estimates (``-log2(chosen / total)``) call this thousands of times."""
    edges = np.stack([lo, _edge(anchor, lo, hi, j, tau), _edge(anchor, lo, hi, j + 1, tau),
                      hi + 1], axis=1)
    below = _below_edges(edges - base[:, None], key, shift, counts, cumulative, bits, tau, cells)
    return below[:, 2] - below[:, 1], below[:, 3] - below[:, 0]


def _below_edges(r: np.ndarray, key: np.ndarray, shift: np.ndarray, counts: np.ndarray,
                 cumulative: np.ndarray, bits: int, tau: int, cells: bool) -> np.ndarray:
    """Mass below each column of ``r`` (edges relative to the rounded mean), per pixel."""
    if not cells:
        return _mass_below(r, key[:, None], shift[:, None], counts, cumulative, bits)
    if not 1 <= tau <= MAX_CELL_TAU:
        raise ValueError(f"near-lossless tables weigh refinement bins only for tau "
                         f"1..{MAX_CELL_TAU}, not {tau}")
    return _cell_mass_below(r, key[:, None], shift[:, None], counts, cumulative, bits, tau)


def bin_masses(counts: np.ndarray, cumulative: np.ndarray, key: np.ndarray, shift: np.ndarray,
               base: np.ndarray, anchor: np.ndarray, lo: np.ndarray, hi: np.ndarray, tau: int,
               bits: int, width: int, cells: bool = False) -> np.ndarray:
    """(pixels, width) float64: the model's integer mass of every bin of each window (0 past
    the window's last bin). Per pixel: ``key`` its table, ``shift`` the table's low bits
    (``SHIFTS[scale bin]``), ``base`` its rounded mean (also the cells' anchor). ``cells``: the
    tables are the model's near-lossless ones for ``tau`` (symbols are cells, not levels)."""
    j = np.arange(width + 1, dtype=np.int64)[None, :]
    edges = _edge(anchor[:, None], lo[:, None], hi[:, None], j, tau)
    below = _below_edges(edges - base[:, None], key, shift, counts, cumulative, bits, tau, cells)
    return np.diff(below, axis=1).astype(np.float64)
