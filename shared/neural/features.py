"""The context vector of every pixel in a polyphase group, in integers.

Features are scale-free: neighbour values minus a local reference ``mu0`` (mean of the four
nearest known neighbours), divided by a local activity ``s`` (mean absolute deviation of all known
neighbours, plus one grey level), in Q4 fixed point and clamped to +-8. The same network then
serves 8-bit and 16-bit data, bright and dark series, and vendors it never saw. ``log2 s`` is a
feature, and so are two noise-level estimates from the already decoded coarser grid (a 9x9 box
mean of its activity around the pixel, and its median over the whole image) as log ratios to
``s``: in noise-bound MR the local ``s`` of 12-16 neighbours is a noisy estimate of the noise,
and those two are steadier. ``mu0`` itself, against ``s`` and against the image's noise, tells
the network how close the pixel is to the Rician noise floor.

With reference slices (the previous slice, the same position in the previous volume) each
reference adds, in the same units: how the current neighbourhood differs from the reference
neighbourhood, the reference's 3x3 window around the pixel, the reference's local mean relative to
``mu0``, its centre normalised by its own activity, and two log-activity ratios.

Integer arithmetic only (int32 with bounds noted inline, one integer division per pixel), so the
codec computes identical features on every machine; training calls this very function.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedcodec.shared.neural.fixed_point import ACT_LIMIT, ONE, ilog2_q6
from fedcodec.shared.neural.geometry import NEAREST, GroupSpec, neighbour_indices, window_indices

_RECIP_BITS = 30
NOISE_RADIUS = 4


@dataclass
class GroupContext:
    """Features and normalisation of the pixels of one group."""

    features: np.ndarray
    """(n_features, n) float32 holding Q4 integers in [-128, 128]; pass ``features.T`` to nets."""
    mu0: np.ndarray
    """(n,) int64, the local reference value in grey levels."""
    s16: np.ndarray
    """(n,) int64, the local activity in 1/16 grey levels (>= 16)."""
    log_s16: np.ndarray
    """(n,) int64, ilog2_q6(s16)."""


@dataclass
class LevelNoise:
    """Noise-level estimates from the decoded coarser grid (the A group of a level)."""

    log_local: np.ndarray
    """(rows * cols,) of the coarser grid: ilog2_q6(16 * 9x9 box mean of activity + 16)."""
    log_global: int
    """ilog2_q6(16 * median activity over the coarser grid + 16)."""


def feature_count(group: GroupSpec, n_refs: int) -> int:
    """Length of a group's context vector with ``n_refs`` reference slices."""
    k = len(group.offsets)
    return k + 6 + n_refs * (k + 9 + 4)


def level_noise(coarse: np.ndarray) -> LevelNoise:
    """Activity |right - here| + |down - here| of the coarser grid, box mean and median."""
    c = coarse.astype(np.int64)
    act = np.zeros(c.shape, dtype=np.int64)
    act[:, :-1] += np.abs(np.diff(c, axis=1))
    act[:-1, :] += np.abs(np.diff(c, axis=0))
    r = NOISE_RADIUS
    padded = np.zeros((c.shape[0] + 2 * r + 1, c.shape[1] + 2 * r + 1), dtype=np.int64)
    padded[r + 1 : r + 1 + c.shape[0], r + 1 : r + 1 + c.shape[1]] = act
    integral = padded.cumsum(0).cumsum(1)
    ones = np.zeros_like(padded)
    ones[r + 1 : r + 1 + c.shape[0], r + 1 : r + 1 + c.shape[1]] = 1
    count_integral = ones.cumsum(0).cumsum(1)
    h, w = c.shape
    d = 2 * r + 1

    def box(s: np.ndarray) -> np.ndarray:
        return s[d : d + h, d : d + w] - s[:h, d : d + w] - s[d : d + h, :w] + s[:h, :w]

    local16 = (box(integral) * 16) // box(count_integral) + 16
    flat = act.reshape(-1)
    median = int(np.partition(flat, flat.size // 2)[flat.size // 2])
    return LevelNoise(ilog2_q6(local16.reshape(-1)), int(ilog2_q6(np.array([16 * median + 16]))[0]))


@lru_cache(maxsize=256)
def coarse_indices(level_shape: tuple[int, int], group: GroupSpec) -> np.ndarray:
    """Flat index into the coarser grid of each group pixel's 2x2 cell."""
    h, w = level_shape
    wc = (w + 1) // 2
    rows = np.arange(group.row_phase, h, 2) // 2
    cols = np.arange(group.col_phase, w, 2) // 2
    out = (rows[:, None] * wc + cols[None, :]).ravel()
    out.setflags(write=False)
    return out


class _Normaliser:
    """``floor(16 * diff / s)`` clamped to +-8 units, with one integer division per pixel."""

    def __init__(self, s16: np.ndarray) -> None:
        self.half = s16 >> 1  # 8 activity units in grey levels
        self.neg_half = -self.half
        self.recip = (1 << _RECIP_BITS) // s16  # s16 <= 2**21, so recip >= 2**9

    def __call__(self, diff: np.ndarray) -> np.ndarray:
        # |clipped| <= s16 / 2, so |clipped * recip| <= 2**29: no int32 overflow.
        clipped = np.minimum(diff, self.half)
        np.maximum(clipped, self.neg_half, out=clipped)
        clipped *= self.recip
        clipped >>= _RECIP_BITS - 8
        return clipped


def _log_ratio(log_a: np.ndarray, log_b: np.ndarray) -> np.ndarray:
    """Q4 log2(a / b) from two ilog2_q6 values, clamped to +-8."""
    return np.clip((log_a - log_b) >> 2, -ACT_LIMIT, ACT_LIMIT)


def group_context(
    level: np.ndarray,
    refs: list[np.ndarray],
    group: GroupSpec,
    level_index: int,
    noise: LevelNoise,
    pixels: slice | np.ndarray | None = None,
) -> GroupContext:
    """Context of the group's pixels (all, or ``pixels`` — a slice or index array — of them).

    ``level`` is the int32 level grid with every position the group may read already filled;
    ``refs`` are int32 reference slices at the same level (fully known); ``noise`` comes from
    :func:`level_noise` of the coarser grid.
    """
    shape = level.shape
    nbr = neighbour_indices(shape, group)
    coarse = coarse_indices(shape, group)
    if pixels is not None:
        nbr = nbr[:, pixels]
        coarse = coarse[pixels]
    k = nbr.shape[0]
    n = nbr.shape[1]
    flat = level.reshape(-1)
    values = flat[nbr]  # int32 grey levels < 2**16
    mu0 = (values[:NEAREST].sum(axis=0, dtype=np.int32) + NEAREST // 2) >> 2
    dev = values - mu0
    # 16 * sum|dev| <= 16 * 16 * 2**16 = 2**24 and s16 <= 2**21: int32 throughout.
    s16 = (np.abs(dev).sum(axis=0, dtype=np.int32) * 16) // k + 16
    log_s16 = ilog2_q6(s16)
    norm = _Normaliser(s16)
    out = np.empty((feature_count(group, len(refs)), n), dtype=np.float32)
    out[:k] = norm(dev)
    out[k] = np.clip((log_s16 - 10 * 64) >> 3, -ACT_LIMIT, ACT_LIMIT)
    out[k + 1] = min(level_index, 3) * (ONE // 2)
    out[k + 2] = _log_ratio(noise.log_local[coarse], log_s16)
    log_global = noise.log_global
    out[k + 3] = _log_ratio(log_global, log_s16)
    # absolute level against the noise: MR magnitude noise is Rician, so near the noise floor the
    # best prediction shrinks towards the floor and the residual is skewed
    out[k + 4] = norm(mu0)
    out[k + 5] = _log_ratio(ilog2_q6(16 * mu0.astype(np.int64) + 16), log_global)
    row = k + 6
    if refs:
        win = window_indices(shape, group)
        if pixels is not None:
            win = win[:, pixels]
        for ref in refs:
            rflat = ref.reshape(-1)
            rvals = rflat[nbr]
            mur = (rvals[:NEAREST].sum(axis=0, dtype=np.int32) + NEAREST // 2) >> 2
            rdev = rvals - mur
            sr16 = (np.abs(rdev).sum(axis=0, dtype=np.int32) * 16) // k + 16
            cross = dev - rdev  # |cross| < 2**17
            sd16 = (np.abs(cross).sum(axis=0, dtype=np.int32) * 16) // k + 16  # <= 2**25
            window = rflat[win] - mur
            out[row : row + k] = norm(cross)
            out[row + k : row + k + 9] = norm(window)
            row += k + 9
            out[row] = norm(mur - mu0)
            out[row + 1] = _Normaliser(sr16)(window[4])
            out[row + 2] = _log_ratio(ilog2_q6(sr16), log_s16)
            out[row + 3] = _log_ratio(ilog2_q6(sd16), log_s16)
            row += 4
    return GroupContext(out, mu0.astype(np.int64), s16.astype(np.int64), log_s16)
