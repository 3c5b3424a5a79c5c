"""The context vector of every pixel in a polyphase group, in integers.

Features are scale-free: neighbour values minus a local reference ``mu0`` (mean of the four
nearest known neighbours), divided by a local activity ``s`` (mean absolute deviation of all known
neighbours, plus one grey level), in Q4 fixed point and clamped to +-8. The same network then
serves 8-bit and 16-bit data, bright and dark series, and vendors it never saw. ``log2 s`` is a
feature, and so are two noise-level estimates from the already decoded coarser grid (a 9x9 box
mean of its activity around the pixel, and its median over the whole image) as log ratios to
``s``: in noise-bound MR the local ``s`` of 12-16 neighbours is a noisy estimate of the noise,
and those two are steadier. ``mu0`` above the image's floor (minimum of the coarser grid), against
``s`` and against the image's noise, tells the network how close the pixel is to the Rician
noise floor.

With reference slices (the previous slice, the same position in the previous volume) each
reference adds, in the same units: how the current neighbourhood differs from the reference
neighbourhood, the reference's 3x3 window around the pixel, the reference's local mean relative to
``mu0``, its centre normalised by its own activity, and two log-activity ratios.

Feature set 2 (issue 11, prediction inputs with their own error feedback) appends three inputs
after those: a gradient-adjusted prediction (the two opposite pairs of nearest neighbours, each
pair's mean weighted by the inverse of its own gradient, leaning along an edge as CALIC's GAP
does), the log ratio of the two gradients (which way the edge runs), and the mean
*signed* error of the local mean ``mu0`` at the four nearest neighbours (bias cancellation: where
the local mean overshoots its neighbours it overshoots here too; the decoder knows those errors).
Which set a model uses follows from its networks' fan-in (part of the model id every stream
carries), so set-1 weights and their streams decode exactly as before.

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
ERROR_RADIUS = 2
FEATURE_SETS = (1, 2)
"""1: the shipped layout; 2: plus gradient-adjusted prediction, edge direction, signed error."""
_EXTRA = {1: 0, 2: 3}
OPPOSITE_PAIRS = {"B": ((0, 3), (1, 2)), "C": ((0, 1), (2, 3)), "D": ((0, 1), (2, 3))}
"""The nearest four neighbours of each group as two opposite pairs (indices into ``offsets``)."""


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
    floor: int
    """Minimum of the coarser grid: where the image's zero is (signed data arrive shifted)."""
    log_err_local: np.ndarray
    """(rows * cols,) of the coarser grid: ilog2_q6(16 * 5x5 box mean of its errors + 16)."""


def feature_count(group: GroupSpec, n_refs: int, feature_set: int = 1) -> int:
    """Length of a group's context vector with ``n_refs`` reference slices."""
    k = len(group.offsets)
    return k + 8 + n_refs * (k + 9 + 4) + _EXTRA[feature_set]


def feature_set_of(group: GroupSpec, n_refs: int, fan_in: int) -> int:
    """The feature set whose context vector has ``fan_in`` inputs (ValueError if none has)."""
    for feature_set in FEATURE_SETS:
        if feature_count(group, n_refs, feature_set) == fan_in:
            return feature_set
    raise ValueError(f"network {group.name}{n_refs}: fan-in {fan_in} matches no feature set")


def _box_mean16(values: np.ndarray, radius: int) -> np.ndarray:
    """16 * mean of ``values`` over a (2r+1)^2 window clipped to the image, + 16 (int64)."""
    h, w = values.shape
    d = 2 * radius + 1
    padded = np.zeros((h + d, w + d), dtype=np.int64)
    padded[radius + 1 : radius + 1 + h, radius + 1 : radius + 1 + w] = values
    integral = padded.cumsum(0).cumsum(1)
    rows = np.minimum(np.arange(h) + radius + 1, h) - np.maximum(np.arange(h) - radius, 0)
    cols = np.minimum(np.arange(w) + radius + 1, w) - np.maximum(np.arange(w) - radius, 0)
    total = integral[d:, d:] - integral[:h, d:] - integral[d:, :w] + integral[:h, :w]
    return (total * 16) // (rows[:, None] * cols[None, :]) + 16


def level_noise(coarse: np.ndarray, coarse_errors: np.ndarray) -> LevelNoise:
    """Noise estimates of a level from its coarser grid (already decoded) and that grid's errors.

    Activity is |right - here| + |down - here|; errors are |x - mu0| of each coarser pixel when it
    was coded (the local-mean predictor's error, independent of the network).
    """
    c = coarse.astype(np.int64)
    act = np.zeros(c.shape, dtype=np.int64)
    act[:, :-1] += np.abs(np.diff(c, axis=1))
    act[:-1, :] += np.abs(np.diff(c, axis=0))
    flat = act.reshape(-1)
    median = int(np.partition(flat, flat.size // 2)[flat.size // 2])
    return LevelNoise(
        ilog2_q6(_box_mean16(act, NOISE_RADIUS).reshape(-1)),
        int(ilog2_q6(np.array([16 * median + 16]))[0]),
        int(c.min()),
        ilog2_q6(_box_mean16(coarse_errors, ERROR_RADIUS).reshape(-1)),
    )


def group_mu0(level: np.ndarray, group: GroupSpec) -> np.ndarray:
    """``mu0`` (mean of the four nearest known neighbours) of every pixel of the group (int32)."""
    nbr = neighbour_indices(level.shape, group)[:NEAREST]
    return (np.take(level.reshape(-1), nbr).sum(axis=0, dtype=np.int32) + NEAREST // 2) >> 2


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
    errors: np.ndarray,
    refs: list[np.ndarray],
    group: GroupSpec,
    level_index: int,
    noise: LevelNoise,
    pixels: slice | np.ndarray | None = None,
    signed: np.ndarray | None = None,
    feature_set: int = 1,
) -> GroupContext:
    """Context of the group's pixels (all, or ``pixels`` — a slice or index array — of them).

    ``level`` is the int32 level grid with every position the group may read already filled;
    ``errors`` holds |x - mu0| of those positions (int32, same shape); ``refs`` are int32
    reference slices at the same level (fully known); ``noise`` comes from :func:`level_noise`.
    ``signed`` (feature set 2 only) holds the signed errors ``x - mu0`` of the known positions.
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
    values = np.take(flat, nbr)  # int32 grey levels < 2**16 (np.take: 2x faster than [])
    mu0 = (values[:NEAREST].sum(axis=0, dtype=np.int32) + NEAREST // 2) >> 2
    dev = values - mu0
    # 16 * sum|dev| <= 16 * 16 * 2**16 = 2**24 and s16 <= 2**21: int32 throughout.
    s16 = (np.abs(dev).sum(axis=0, dtype=np.int32) * 16) // k + 16
    log_s16 = ilog2_q6(s16)
    norm = _Normaliser(s16)
    out = np.empty((feature_count(group, len(refs), feature_set), n), dtype=np.float32)
    out[:k] = norm(dev)
    out[k] = np.clip((log_s16 - 10 * 64) >> 3, -ACT_LIMIT, ACT_LIMIT)
    out[k + 1] = min(level_index, 3) * (ONE // 2)
    out[k + 2] = _log_ratio(np.take(noise.log_local, coarse), log_s16)
    log_global = noise.log_global
    out[k + 3] = _log_ratio(log_global, log_s16)
    # level above the image's floor against the noise: MR magnitude noise is Rician, so near the
    # floor the best prediction shrinks towards it and the residual is skewed. The floor is the
    # coarser grid's minimum (signed data arrive shifted by 2**(bits-1); 0 is not the zero).
    above = np.maximum(mu0 - noise.floor, 0)
    out[k + 4] = norm(above)
    out[k + 5] = _log_ratio(ilog2_q6(16 * above.astype(np.int64) + 16), log_global)
    # error energy: how wrong the local mean was around here, on the coarser grid (5x5) and at
    # the four nearest known neighbours (classic lossless-coding context, CALIC/JPEG XL style)
    out[k + 6] = _log_ratio(np.take(noise.log_err_local, coarse), log_s16)
    near = np.take(errors.reshape(-1), nbr[:NEAREST]).sum(axis=0, dtype=np.int32)  # <= 2**18
    out[k + 7] = _log_ratio(ilog2_q6(4 * near + 16), log_s16)
    row = k + 8
    if refs:
        win = window_indices(shape, group)
        if pixels is not None:
            win = win[:, pixels]
        for ref in refs:
            rflat = ref.reshape(-1)
            rvals = np.take(rflat, nbr)
            mur = (rvals[:NEAREST].sum(axis=0, dtype=np.int32) + NEAREST // 2) >> 2
            rdev = rvals - mur
            sr16 = (np.abs(rdev).sum(axis=0, dtype=np.int32) * 16) // k + 16
            cross = dev - rdev  # |cross| < 2**17
            sd16 = (np.abs(cross).sum(axis=0, dtype=np.int32) * 16) // k + 16  # <= 2**25
            window = np.take(rflat, win) - mur
            out[row : row + k] = norm(cross)
            out[row + k : row + k + 9] = norm(window)
            row += k + 9
            out[row] = norm(mur - mu0)
            out[row + 1] = _Normaliser(sr16)(window[4])
            out[row + 2] = _log_ratio(ilog2_q6(sr16), log_s16)
            out[row + 3] = _log_ratio(ilog2_q6(sd16), log_s16)
            row += 4
    if feature_set >= 2:
        if signed is None:
            raise ValueError("feature set 2 needs the signed error map")
        _error_feedback(out[row:], values, mu0, s16, norm, group,
                        np.take(signed.reshape(-1), nbr[:NEAREST]))
    return GroupContext(out, mu0.astype(np.int64), s16.astype(np.int64), log_s16)


def _error_feedback(out: np.ndarray, values: np.ndarray, mu0: np.ndarray, s16: np.ndarray,
                    norm: _Normaliser, group: GroupSpec, near_signed: np.ndarray) -> None:
    """Feature set 2's three rows: gradient-adjusted prediction, edge direction, signed error.

    Each opposite pair (a, b) of nearest neighbours predicts (a + b) / 2 with gradient |a - b|;
    the blend weights a pair by the *other* pair's gradient + 1, i.e. it leans on the pair
    along the edge (CALIC's GAP, made smooth). int64: values < 2**16, gradients < 2**16, so the
    products stay below 2**34.
    """
    (a1, b1), (a2, b2) = OPPOSITE_PAIRS[group.name]
    v = values.astype(np.int64)
    g1 = np.abs(v[a1] - v[b1]) + 1
    g2 = np.abs(v[a2] - v[b2]) + 1
    twice = ((v[a1] + v[b1]) * g2 + (v[a2] + v[b2]) * g1) // (g1 + g2)  # 2 * prediction
    # floor(16 * (pred - mu0) / s) = floor(256 * (twice - 2 mu0) / (2 * s16)), clamped to +-8
    diff = np.clip(twice - 2 * mu0, -s16, s16)
    out[0] = (diff * norm.recip) >> (_RECIP_BITS - 7)
    out[1] = _log_ratio(ilog2_q6(16 * g1), ilog2_q6(16 * g2))
    # mean signed error of mu0 at the four nearest neighbours: |sum| <= 4 * 2**16
    out[2] = norm((near_signed.sum(axis=0, dtype=np.int32) + 2) >> 2)
