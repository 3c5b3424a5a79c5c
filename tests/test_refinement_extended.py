"""Extended refinement layers (0xA9): a progressive layer's bins weighed with the model's
near-lossless tables for its tau, least-squares mean corrections and group scale offsets, each
chosen by the encoder where it codes shorter. Every choice round-trips bit-exactly and holds
the layer's bound; malformed headers are refused.

Data: pydicom-data's 64x64 12-bit MR, upsampled to 128x128 (an interpolated matrix, as
scanners reconstruct, where mean corrections pay; its finest groups reach ``MIN_PIXELS``).
``fixtures/neural/progressive-v3.npz``: two such slices and the 13-4-0 streams the build that
added 0xA9 wrote for them with ``neural_v3`` (regenerate on purpose only, when the default
model changes: ``python tests/test_refinement_extended.py --write``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural.adaptive_encoder import encode_refinement_adaptive
from fedcodec.shared.neural.slice_coder import SliceParams, decode_slice, encode_slice
from fedcodec.shared.neural.stream_format import (
    EXTENDED_WINDOW_MAGIC,
    MAX_CELL_WINDOW_TAU,
    WINDOW_MAGIC,
    StreamHeader,
    pack,
    unpack,
    write_varint,
)
from fedcodec.shared.sources import read_stacks

EMRI = Path(pydicom.__file__).parents[1] / "data_store" / "data" / "emri_small.dcm"
GOLDEN = Path(__file__).parent / "fixtures" / "neural" / "progressive-v3.npz"
GOLDEN_SPEC = "neural:mode=progressive,layers=13-4-0,weights=neural_v3"


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return _upsampled()


def _upsampled() -> np.ndarray:
    """Three slices upsampled 2x with linear interpolation (rounded): 128x128, 12 bits."""
    (stack,), _ = read_stacks(EMRI)
    small = stack.codec_volume()[0][:3].astype(np.float64)
    rows = np.interp(np.arange(128) / 2, np.arange(64), np.arange(64))
    lo = np.floor(rows).astype(int)
    hi = np.minimum(lo + 1, 63)
    w = (rows - lo)[None, :, None]
    tall = small[:, lo, :] * (1 - w) + small[:, hi, :] * w
    w = (rows - lo)[None, None, :]
    wide = tall[:, :, lo] * (1 - w) + tall[:, :, hi] * w
    return np.rint(wide).astype(np.uint16)


def _header(**fields) -> StreamHeader:
    base = {"tau": 4, "window_bound": 13}
    return StreamHeader(rows=8, cols=8, bits=12, uint16=True, ref_offsets=(3,),
                        model_id=b"\x01\x02", crc32=7, **{**base, **fields})


@pytest.mark.parametrize("fields", [
    {}, {"cell_tables": True}, {"corrections": ((0, tuple(range(1, 13))),)},
    {"group_offsets": ((1, -2),), "scale_offset": 3},
    {"cell_tables": True, "group_offsets": ((2, 1),), "corrections": ((2, (5,) * 16),)},
])
def test_refinement_headers_round_trip(fields: dict) -> None:
    header = _header(**fields)
    data = pack(header, np.arange(3, dtype=np.uint32))
    assert data[0] == (EXTENDED_WINDOW_MAGIC if fields else WINDOW_MAGIC)
    parsed, words = unpack(data)
    assert parsed == header and words.tolist() == [0, 1, 2]


def test_malformed_extended_refinements_are_refused() -> None:
    data = bytearray(pack(_header(cell_tables=True), np.zeros(1, dtype=np.uint32)))
    flags_at = 2 + 5 + 1  # rows, cols, tau, the reference, the window, the offset byte
    assert data[flags_at] == 16
    for bad in (0, 1, 2, 16 | 1, 16 | 2, 64):  # none, centroid, a range, unknown bits
        data[flags_at] = bad
        with pytest.raises(CorruptDataError, match="flags"):
            unpack(bytes(data))
    wide = _header(cell_tables=True, tau=MAX_CELL_WINDOW_TAU + 1, window_bound=2000)
    with pytest.raises(ValueError, match="near-lossless tables"):
        pack(wide, np.zeros(1, dtype=np.uint32))
    forged = bytearray(pack(dataclasses.replace(wide, cell_tables=False, group_offsets=((0, 1),)),
                            np.zeros(1, dtype=np.uint32)))
    flags_at = 2 + 1 + 1 + len(write_varint(wide.tau)) + 1 + len(write_varint(4000)) + 1
    assert forged[flags_at] == 8  # group offsets
    forged[flags_at] = 8 | 16
    with pytest.raises(CorruptDataError, match=f"only for tau 1..{MAX_CELL_WINDOW_TAU}"):
        unpack(bytes(forged))


@pytest.mark.parametrize("choice", [
    {"cell_tables": True}, {"group_offsets": ((0, 2), (4, -3)), "scale_offset": 1},
    {"corrections": ((1, (40,) * 12), (2, (-20,) + (10,) * 15))},
    {"cell_tables": True, "corrections": ((0, (16,) * 12),), "group_offsets": ((2, 2),)},
])
def test_every_refinement_choice_decodes_and_holds_the_bound(volume, choice: dict) -> None:
    """Each choice forced on one slice (grid layout): decoded bit-exactly, within tau."""
    codec = get_codec("neural:tau=13")
    weights, models = codec._weights()
    coarse = codec._encode_one(volume[0], 12, [], (), 13)[1]
    params = SliceParams(12, 4, **choice)
    tables = models.for_bound(4) if params.cell_tables else models
    assert tables is not models or not params.cell_tables
    words, recon = encode_slice(volume[0], params, [coarse], weights, tables, window_bound=13)
    assert np.abs(recon.astype(np.int64) - volume[0]).max() <= 4
    decoded = decode_slice(words, volume[0].shape, params, [coarse], weights, tables,
                           window_bound=13)
    assert np.array_equal(decoded, recon)


def test_the_encoder_picks_what_pays_and_the_layers_decode(volume) -> None:
    """On an interpolated matrix the lossless layer takes mean corrections; every layer decodes
    within its bound and the last one exactly; the near-lossless tables never make a layer
    larger than the lossless tables alone."""
    codec = get_codec("neural:mode=progressive,layers=13-4-0")
    streams = codec.encode_volume(volume, 12)
    n = volume.shape[0]
    headers = [unpack(s)[0] for s in streams[n:] if s[0] in (WINDOW_MAGIC, EXTENDED_WINDOW_MAGIC)]
    assert any(h.corrections for h in headers if h.tau == 0)
    for layer, bound in enumerate(codec.layers, start=1):
        decoded = codec.decode_layers(streams[: layer * n], layer, partial=True)
        assert np.abs(decoded.astype(np.int64) - volume).max() <= bound
    assert np.array_equal(codec.decode_volume(streams), volume)

    weights, models = codec._weights()
    coarse = codec._encode_one(volume[1], 12, [], (), 13)[1]
    params = SliceParams(12, 4)
    both = encode_refinement_adaptive(volume[1], params, [coarse], weights, models, 13,
                                      models.for_bound(4))
    lossless = encode_refinement_adaptive(volume[1], params, [coarse], weights, models, 13)
    assert both[0].size <= lossless[0].size and not lossless[2].cell_tables
    assert np.abs(both[1].astype(np.int64) - volume[1]).max() <= 4


def test_a_layout_with_nothing_to_code_is_handled() -> None:
    """2-bit pixels near 0 refined from within 2 to within 1: on the grid layout every window
    [0, 2] is one cell (nothing coded); the encoder still chooses, and the result decodes."""
    codec = get_codec("neural")
    weights, models = codec._weights()
    image = np.zeros((16, 16), dtype=np.uint8)
    image[::3, ::2] = 1
    coarse = np.zeros((16, 16), dtype=np.int32)
    words, recon, params = encode_refinement_adaptive(image, SliceParams(2, 1), [coarse],
                                                      weights, models, 2, models.for_bound(1))
    assert np.abs(recon - image).max() <= 1
    decoded = decode_slice(words, image.shape, params, [coarse], weights,
                           models.for_bound(1) if params.cell_tables else models,
                           window_bound=2)
    assert np.array_equal(decoded, recon)


def _golden() -> tuple[np.ndarray, list[bytes]]:
    with np.load(GOLDEN) as z:
        blob, ends = z["streams"].tobytes(), np.cumsum(z["lengths"])
        starts = np.concatenate([[0], ends[:-1]])
        return z["pixels"], [blob[a:b] for a, b in zip(starts, ends, strict=True)]


def test_golden_progressive_streams_decode_and_are_rewritten_identically() -> None:
    """Extended refinements (0xA9, here with mean corrections) written by the build that added
    them decode to the same pixels, layer by layer; the encoder writes the same bytes."""
    pixels, streams = _golden()
    assert any(unpack(s)[0].corrections for s in streams if s[0] == EXTENDED_WINDOW_MAGIC)
    codec = get_codec(GOLDEN_SPEC)
    n = pixels.shape[0]
    for layer, bound in enumerate(codec.layers, start=1):
        decoded = codec.decode_layers(streams[: layer * n], layer, partial=True)
        assert np.abs(decoded.astype(np.int64) - pixels).max() <= bound
    assert np.array_equal(codec.decode_volume(streams), pixels)
    assert codec.encode_volume(pixels, 12) == streams


def _write() -> None:  # pragma: no cover - run by hand, on purpose
    pixels = _upsampled()[:2]
    streams = get_codec(GOLDEN_SPEC).encode_volume(pixels, 12)
    np.savez_compressed(GOLDEN, pixels=pixels,
                        streams=np.frombuffer(b"".join(streams), dtype=np.uint8),
                        lengths=np.array([len(s) for s in streams], dtype=np.int64))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes, {len(streams)} streams)")


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--write"]:
        _write()
