"""Large slices as independent tiles: bounded memory, same streams for every image that fits.

The slice coder keeps index tables of a few hundred bytes per pixel (1.07 GB peak for a 2048 x 2048
slice, measured), so a slice with a side above ``TILE_SIDE`` is cut into tiles of at most
``TILE_SIDE`` x ``TILE_SIDE``, each coded as an ordinary slice stream conditioned on the same tile
of its reference slices. Images that fit one tile (every MR slice in ``../shared/data``) are coded
exactly as before. Byte layout of a tiled stream::

    byte 0      0xA3 (tiled slice)
    varint      rows, cols, tile side
    varint*     byte length of every tile stream, tiles in row-major order
    rest        the tile streams (each a 0xA1 / 0xA2 slice stream, see stream_format)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural.stream_format import MAX_SIDE, read_varint, write_varint

TILED_MAGIC = 0xA3
TILE_SIDE = 1024
MIN_TILE_SIDE = 16


@dataclass(frozen=True)
class TileGrid:
    rows: int
    cols: int
    side: int

    def __iter__(self) -> Iterator[tuple[slice, slice]]:
        for r in range(0, self.rows, self.side):
            for c in range(0, self.cols, self.side):
                yield slice(r, min(r + self.side, self.rows)), slice(c, min(c + self.side, self.cols))

    def __len__(self) -> int:
        return -(-self.rows // self.side) * -(-self.cols // self.side)


def needs_tiles(shape: tuple[int, int], side: int | None = None) -> bool:
    side = TILE_SIDE if side is None else side
    return shape[0] > side or shape[1] > side


def is_tiled(data: bytes) -> bool:
    return len(data) > 0 and data[0] == TILED_MAGIC


def pack_tiled(grid: TileGrid, streams: Sequence[bytes]) -> bytes:
    head = bytearray([TILED_MAGIC])
    for value in (grid.rows, grid.cols, grid.side, *map(len, streams)):
        head += write_varint(value)
    return bytes(head) + b"".join(streams)


def unpack_tiled(data: bytes) -> tuple[TileGrid, list[bytes]]:
    """The grid and the tile streams; :class:`CorruptDataError` for anything inconsistent."""
    if not is_tiled(data):
        raise CorruptDataError("neural stream: not a tiled slice stream")
    pos = 1
    rows, pos = read_varint(data, pos)
    cols, pos = read_varint(data, pos)
    side, pos = read_varint(data, pos)
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE and MIN_TILE_SIDE <= side <= MAX_SIDE):
        raise CorruptDataError(f"neural stream: bad tiled slice {rows}x{cols} / tile {side}")
    grid = TileGrid(rows, cols, side)
    lengths = []
    for _ in range(len(grid)):
        length, pos = read_varint(data, pos)
        lengths.append(length)
    if pos + sum(lengths) != len(data):
        raise CorruptDataError("neural stream: tiled slice is truncated or has trailing bytes")
    streams = []
    for length in lengths:
        tile = data[pos : pos + length]
        if is_tiled(tile):
            raise CorruptDataError("neural stream: a tile may not itself be tiled")
        streams.append(tile)
        pos += length
    return grid, streams


class CroppedReferences(Sequence):
    """Earlier reconstructions, seen through one tile (what a tile stream's offsets index)."""

    def __init__(self, decoded: Sequence[np.ndarray], rows: slice, cols: slice) -> None:
        self._decoded, self._rows, self._cols = decoded, rows, cols

    def __len__(self) -> int:
        return len(self._decoded)

    def __getitem__(self, index):  # type: ignore[override]
        return self._decoded[index][self._rows, self._cols]
