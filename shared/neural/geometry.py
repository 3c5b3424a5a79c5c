"""The decoding order: a 2x2 polyphase pyramid, and where each group finds its known neighbours.

An image is split into four polyphase groups: A = (even row, even col), B = (odd, odd),
C = (even, odd), D = (odd, even). A is the image at half resolution and is coded first, by the
same split, down to a single pixel; then B (which sees the four diagonal A neighbours), then C
(A left/right, B above/below), then D (all eight neighbours). Every pixel of a group is decoded
at once, so a slice takes ``3 * levels`` vectorised steps instead of one step per pixel.

Coordinates are in the grid of one pyramid level. An offset that leaves the image is mirrored
through the pixel (``-d``; same parity, so the mirrored position belongs to the same known
group); if that also leaves the image the group's anchor (the A pixel at the top-left of the
pixel's 2x2 cell, always inside) stands in. Index tables depend only on the shape and are cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class GroupSpec:
    """One polyphase group: its phase in the 2x2 cell and its known neighbours, nearest first."""

    name: str
    row_phase: int
    col_phase: int
    offsets: tuple[tuple[int, int], ...]
    """(dy, dx) of known neighbours; the first ``NEAREST`` are the nearest four."""


NEAREST = 4
"""Every group has exactly four known neighbours at distance 1 (B: diagonal ones)."""

GROUPS: tuple[GroupSpec, ...] = (
    GroupSpec(
        "B", 1, 1,
        ((-1, -1), (-1, 1), (1, -1), (1, 1),
         (-1, -3), (-1, 3), (1, -3), (1, 3), (-3, -1), (-3, 1), (3, -1), (3, 1)),
    ),
    GroupSpec(
        "C", 0, 1,
        ((0, -1), (0, 1), (-1, 0), (1, 0),
         (-2, -1), (-2, 1), (2, -1), (2, 1), (-1, -2), (-1, 2), (1, -2), (1, 2)),
    ),
    GroupSpec(
        "D", 1, 0,
        ((-1, 0), (1, 0), (0, -1), (0, 1),
         (-1, -1), (-1, 1), (1, -1), (1, 1),
         (-1, -2), (-1, 2), (1, -2), (1, 2), (-2, -1), (-2, 1), (2, -1), (2, 1)),
    ),
)

REF_WINDOW: tuple[tuple[int, int], ...] = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
"""Positions read in a reference slice (fully known): the 3x3 window around the pixel."""


def pyramid_shapes(rows: int, cols: int) -> list[tuple[int, int]]:
    """Shapes of the level grids, full resolution first, down to (1, 1)."""
    shapes = [(rows, cols)]
    while shapes[-1] != (1, 1):
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def group_shape(level_shape: tuple[int, int], group: GroupSpec) -> tuple[int, int]:
    """Number of rows and columns of ``group`` in a level grid (may be zero)."""
    h, w = level_shape
    return (h - group.row_phase + 1) // 2, (w - group.col_phase + 1) // 2


@lru_cache(maxsize=256)
def group_positions(level_shape: tuple[int, int], group: GroupSpec) -> np.ndarray:
    """Flat indices (into the level grid) of the group's pixels, row-major."""
    h, w = level_shape
    rows = np.arange(group.row_phase, h, 2)
    cols = np.arange(group.col_phase, w, 2)
    return (rows[:, None] * w + cols[None, :]).ravel()


def _mirrored(level_shape: tuple[int, int], group: GroupSpec, offsets) -> np.ndarray:
    h, w = level_shape
    rows = np.arange(group.row_phase, h, 2)
    cols = np.arange(group.col_phase, w, 2)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    r, c = r.ravel(), c.ravel()
    anchor = (r - group.row_phase) * w + (c - group.col_phase)
    out = np.empty((len(offsets), r.size), dtype=np.intp)
    for k, (dy, dx) in enumerate(offsets):
        rr, cc = r + dy, c + dx
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        mr, mc = r - dy, c - dx
        mirror_inside = (mr >= 0) & (mr < h) & (mc >= 0) & (mc < w)
        out[k] = np.where(inside, rr * w + cc, np.where(mirror_inside, mr * w + mc, anchor))
    return out


@lru_cache(maxsize=256)
def neighbour_indices(level_shape: tuple[int, int], group: GroupSpec) -> np.ndarray:
    """(len(offsets), n) flat indices of each pixel's known neighbours in the level grid."""
    out = _mirrored(level_shape, group, group.offsets)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=256)
def window_indices(level_shape: tuple[int, int], group: GroupSpec) -> np.ndarray:
    """(9, n) flat indices of the 3x3 window around each pixel, for reference slices.

    Reference slices are fully known, so mirroring only keeps positions inside the image.
    """
    out = _mirrored(level_shape, group, REF_WINDOW)
    out.setflags(write=False)
    return out
