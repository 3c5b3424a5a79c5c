"""Siemens mosaics: one stored image holding a square grid of slice tiles.

Tile ``k`` sits at grid row ``k // n``, column ``k % n`` with ``n = ceil(sqrt(tile count))``; the
grid's unused tiles are empty (zeros). Splitting keeps the tile index so the writer can put every
tile back where it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MosaicLayout:
    """Where the tiles of one mosaic image are."""

    tiles: int
    grid: int
    tile_rows: int
    tile_columns: int

    def tile_slices(self, k: int) -> tuple[slice, slice]:
        row, col = divmod(k, self.grid)
        return (
            slice(row * self.tile_rows, (row + 1) * self.tile_rows),
            slice(col * self.tile_columns, (col + 1) * self.tile_columns),
        )


def mosaic_layout(rows: int, columns: int, tiles: int) -> MosaicLayout | None:
    """Layout of ``tiles`` tiles in a rows x columns image; None if they do not fit evenly."""
    if tiles < 1:
        return None
    grid = math.ceil(math.sqrt(tiles))
    if rows % grid or columns % grid:
        return None
    return MosaicLayout(tiles, grid, rows // grid, columns // grid)


def split_mosaic(image: np.ndarray, layout: MosaicLayout) -> np.ndarray:
    """(rows, cols) mosaic -> (tiles, tile_rows, tile_cols) stack, in tile order."""
    return np.stack([image[layout.tile_slices(k)] for k in range(layout.tiles)])


def assemble_mosaic(
    tiles: dict[int, np.ndarray], layout: MosaicLayout, dtype: np.dtype
) -> np.ndarray:
    """Put tiles (tile index -> image) back into a zero-filled mosaic image."""
    image = np.zeros((layout.grid * layout.tile_rows, layout.grid * layout.tile_columns), dtype)
    for k, tile in tiles.items():
        image[layout.tile_slices(k)] = tile
    return image
