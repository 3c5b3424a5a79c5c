"""The context vector of every pixel in a polyphase group, in integers.

Features are scale-free: neighbour values minus a local reference ``mu0`` (mean of the four
nearest known neighbours), divided by a local activity ``s`` (mean absolute deviation of all known
neighbours, plus one grey level), in Q6 fixed point and clamped to +-16. The same network then
serves 8-bit and 16-bit data, bright and dark series, and vendors it never saw; ``log2 s`` is a
feature of its own so the network can still tell noise-bound flat areas from edges.

With reference slices (the previous slice, the same position in the previous volume) each
reference adds, in the same units: how the current neighbourhood differs from the reference
neighbourhood, the reference's 3x3 window around the pixel, the reference's local mean relative to
``mu0``, its centre normalised by its own activity, and two log-activity ratios.

Everything here is int64 arithmetic with shifts and one integer division per pixel, so the codec
computes identical features on every machine (training uses the very same function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedcodec.shared.neural.fixed_point import ONE, Q, ilog2_q6
from fedcodec.shared.neural.geometry import NEAREST, GroupSpec, neighbour_indices, window_indices

CLAMP = 16 * ONE
"""Normalised features are clamped to +-16 local activity units."""
_RECIP_BITS = 30


@dataclass
class GroupContext:
    """Features and normalisation of the pixels of one group."""

    features: np.ndarray
    """(n, n_features) int64, Q6."""
    mu0: np.ndarray
    """(n,) int64, the local reference value in grey levels."""
    s16: np.ndarray
    """(n,) int64, the local activity in 1/16 grey levels (>= 16)."""
    log_s16: np.ndarray
    """(n,) int64, ilog2_q6(s16)."""


def feature_count(group: GroupSpec, n_refs: int) -> int:
    """Length of a group's context vector with ``n_refs`` reference slices."""
    k = len(group.offsets)
    return k + 2 + n_refs * (k + 9 + 4)


def _activity_s16(deviations: np.ndarray) -> np.ndarray:
    """16 * mean |deviation| + 16 (one grey level), from a (k, n) array."""
    k = deviations.shape[0]
    return (np.abs(deviations).sum(axis=0) * 16) // k + 16


class _Normaliser:
    """Divides by ``s16`` with one integer division per pixel (a reciprocal), then clamps."""

    def __init__(self, s16: np.ndarray) -> None:
        self.s16 = s16
        self.recip = (1 << _RECIP_BITS) // s16

    def __call__(self, diff: np.ndarray) -> np.ndarray:
        # |diff| <= s16 (16 activity units) keeps |product| <= 2**30 (int64 is plenty).
        clipped = np.clip(diff, -self.s16, self.s16)
        return (clipped * self.recip) >> (_RECIP_BITS - 4 - Q)


def group_context(
    level: np.ndarray,
    refs: list[np.ndarray],
    group: GroupSpec,
    level_index: int,
    pixels: slice | None = None,
) -> GroupContext:
    """Context of the group's pixels (all, or the ``pixels`` slice of them, for chunking).

    ``level`` is the level grid (int64) with every position the group may read already filled;
    ``refs`` are the reference slices at the same level (fully known).
    """
    shape = level.shape
    nbr = neighbour_indices(shape, group)
    if pixels is not None:
        nbr = nbr[:, pixels]
    flat = level.reshape(-1)
    values = flat[nbr]
    mu0 = (values[:NEAREST].sum(axis=0) + NEAREST // 2) // NEAREST
    dev = values - mu0
    s16 = _activity_s16(dev)
    log_s16 = ilog2_q6(s16)
    norm = _Normaliser(s16)
    columns = [norm(dev).T]
    level_code = min(level_index, 3) * (ONE // 3)
    columns.append(np.stack([(log_s16 - 6 * ONE) >> 1, np.full_like(mu0, level_code)], axis=1))
    if refs:
        win = window_indices(shape, group)
        if pixels is not None:
            win = win[:, pixels]
        for ref in refs:
            rflat = ref.reshape(-1)
            rvals = rflat[nbr]
            mur = (rvals[:NEAREST].sum(axis=0) + NEAREST // 2) // NEAREST
            rdev = rvals - mur
            sr16 = _activity_s16(rdev)
            cross = dev - rdev
            sd16 = _activity_s16(cross)
            window = rflat[win] - mur
            centre_own = _Normaliser(sr16)(window[4])
            columns.append(norm(cross).T)
            columns.append(norm(window).T)
            columns.append(
                np.stack(
                    [
                        norm(mur - mu0),
                        centre_own,
                        (ilog2_q6(sr16) - log_s16) >> 1,
                        (ilog2_q6(sd16) - log_s16) >> 1,
                    ],
                    axis=1,
                )
            )
    features = np.concatenate(columns, axis=1)
    return GroupContext(features, mu0, s16, log_s16)
