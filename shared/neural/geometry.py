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

from collections.abc import Iterator, Sequence
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


@lru_cache(maxsize=64)
def _coordinates(level_shape: tuple[int, int], group: GroupSpec
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns, flat index and the cell's A pixel (flat index) of every pixel of the
    group."""
    h, w = level_shape
    rows = np.arange(group.row_phase, h, 2)
    cols = np.arange(group.col_phase, w, 2)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    r, c = r.ravel(), c.ravel()
    flat = r * w + c
    anchor = flat - group.row_phase * w - group.col_phase
    for a in (r, c, flat, anchor):
        a.setflags(write=False)
    return r, c, flat, anchor


@lru_cache(maxsize=64)
def _near_edge(level_shape: tuple[int, int], group: GroupSpec, margin: int) -> np.ndarray:
    """Indices (into the group) of its pixels within ``margin`` of the grid's edge."""
    h, w = level_shape
    r, c = _coordinates(level_shape, group)[:2]
    out = np.flatnonzero((r < margin) | (r >= h - margin) | (c < margin) | (c >= w - margin))
    out.setflags(write=False)
    return out


def _mirrored_at(level_shape: tuple[int, int], r: np.ndarray, c: np.ndarray,
                 anchor: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The neighbour at (dy, dx) of pixels (r, c); outside the grid the one at (-dy, -dx)
    (the same phase, so known too); outside both, the cell's A pixel."""
    h, w = level_shape
    rr, cc = r + dy, c + dx
    inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    mr, mc = r - dy, c - dx
    mirror_inside = (mr >= 0) & (mr < h) & (mc >= 0) & (mc < w)
    return np.where(inside, rr * w + cc, np.where(mirror_inside, mr * w + mc, anchor))


def _mirrored(level_shape: tuple[int, int], group: GroupSpec, offsets) -> np.ndarray:
    return np.stack(list(tap_indices(level_shape, group, offsets)))


def tap_indices(level_shape: tuple[int, int], group: GroupSpec,
                offsets: Sequence[tuple[int, int]], select: np.ndarray | None = None
                ) -> Iterator[np.ndarray]:
    """For each offset in turn, the flat indices of that neighbour of each pixel of the group
    (or of its pixels ``select``), mirrored at the borders as :func:`neighbour_indices` does:
    ``mean_fit``'s taps, one at a time (up to 96 of them, too many to keep). Inside the grid a
    neighbour is the pixel's index plus a constant, so only pixels near the edge take the
    mirror rule."""
    h, w = level_shape
    r, c, flat, anchor = _coordinates(level_shape, group)
    if select is not None:
        r, c, flat, anchor = r[select], c[select], flat[select], anchor[select]
    margins: dict[int, np.ndarray] = {}
    for dy, dx in offsets:
        margin = max(abs(dy), abs(dx))
        if margin not in margins:
            if select is None:
                margins[margin] = _near_edge(level_shape, group, margin)
            else:
                margins[margin] = np.flatnonzero((r < margin) | (r >= h - margin)
                                                 | (c < margin) | (c >= w - margin))
        edge = margins[margin]
        out = flat + (dy * w + dx)
        if edge.size:
            out[edge] = _mirrored_at(level_shape, r[edge], c[edge], anchor[edge], dy, dx)
        yield out


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
