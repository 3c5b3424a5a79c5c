"""Large slices are coded as tiles: exact round trips, bounded error, references, corruption."""

from __future__ import annotations

import numpy as np
import pytest

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural import tiles
from fedcodec.shared.neural.tiles import TILED_MAGIC, unpack_tiled


def _volume(slices: int, rows: int, cols: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:rows, 0:cols]
    base = 1500 + 700 * np.sin(x / 13.0) * np.cos(y / 17.0)
    return np.stack([(base + 30 * i + rng.normal(0, 15, base.shape)).clip(0, 4095)
                     for i in range(slices)]).astype(np.uint16)


@pytest.fixture()
def small_tiles(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(tiles, "TILE_SIDE", 48)
    return 48


def test_large_slice_round_trips_through_tiles(small_tiles: int) -> None:
    image = _volume(1, 100, 70)[0]  # 3 x 2 tiles, ragged at the bottom and right
    codec = get_codec("neural:fallback=0,interslice=2")
    data = codec.encode(image, 12)
    assert data[0] == TILED_MAGIC
    grid, streams = unpack_tiled(data)
    assert (grid.rows, grid.cols, grid.side, len(streams)) == (100, 70, small_tiles, 6)
    np.testing.assert_array_equal(codec.decode(data), image)


def test_tiled_volume_uses_references_and_keeps_tau(small_tiles: int) -> None:
    volume = _volume(3, 60, 100)
    lossless = get_codec("neural:fallback=0,interslice=2")
    streams = lossless.encode_volume(volume, 12)
    np.testing.assert_array_equal(lossless.decode_volume(streams), volume)
    near = get_codec("neural:tau=2,fallback=0,interslice=2")
    decoded = near.decode_volume(near.encode_volume(volume, 12))
    error = np.abs(decoded.astype(np.int32) - volume.astype(np.int32))
    assert error.max() <= 2 and error.max() > 0


def test_image_that_fits_one_tile_is_coded_as_before() -> None:
    image = _volume(1, 40, 30)[0]
    data = get_codec("neural:fallback=0,interslice=2").encode(image, 12)
    assert data[0] != TILED_MAGIC


def test_truncated_or_damaged_tiled_stream_is_rejected(small_tiles: int) -> None:
    image = _volume(1, 100, 70)[0]
    codec = get_codec("neural:fallback=0,interslice=2")
    data = codec.encode(image, 12)
    for cut in (1, 3, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptDataError):
            codec.decode(data[:cut])
    with pytest.raises(CorruptDataError):
        codec.decode(data + b"\0")
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0x10
    with pytest.raises(CorruptDataError):
        codec.decode(bytes(damaged))
    nested = bytearray(data)
    _, streams = unpack_tiled(data)
    nested[len(data) - sum(map(len, streams))] = TILED_MAGIC  # first tile claims to be tiled
    with pytest.raises(CorruptDataError, match="may not itself be tiled"):
        codec.decode(bytes(nested))
