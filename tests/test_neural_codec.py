"""The ``neural`` codec through the registry: round trips, tau bound, volumes, corrupt streams.

Uses the shipped weights (shared/neural/weights). Real slices come from the shared GE data (an
fMRI run: 64x64, 10 slices per volume) and the 3-D T1 (256x256); synthetic MR-like phantoms cover
odd sizes and bit depths.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import require_shared_data

from fedcodec.shared.codecs.base import CodecMode, codec_names, get_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.neural.stream_format import unpack
from fedcodec.shared.neural.volume_context import detect_period
from fedcodec.shared.pixels import to_unsigned


def phantom(shape: tuple[int, int], bits: int, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    """A bright ellipse with a bias field, a dark core, a dark background, and noise."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols]
    ny, nx = (y - rows / 2) / max(rows / 2.4, 1), (x - cols / 2) / max(cols / 2.2, 1)
    body = (ny**2 + nx**2 < 1) * (0.6 + 0.2 * nx) - (ny**2 + (nx - 0.2) ** 2 < 0.15) * 0.25
    peak = (1 << bits) - 1
    image = body * peak + np.abs(rng.normal(0, noise * peak, shape))
    return np.clip(np.rint(image), 0, peak).astype(np.uint8 if bits <= 8 else np.uint16)


def _stored(path: Path) -> tuple[np.ndarray, int]:
    ds = pydicom.dcmread(path)
    bits = int(ds.BitsStored)
    values, _ = to_unsigned(ds.pixel_array, bits, bool(ds.PixelRepresentation))
    return values, bits


@cache
def ge_fmri() -> tuple[np.ndarray, int]:
    """30 slices (3 volumes of 10) of a GE fMRI run, instance order; 16 bits stored, signed."""
    folder = require_shared_data("dicom", "ge", "In", "SliceTimingMPh", "2_fMRI_Multiphase_Des")
    files = sorted(folder.iterdir(), key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber))
    slices = [_stored(p) for p in files[:30]]
    return np.stack([s for s, _ in slices]), slices[0][1]


@cache
def ge_t1_slice() -> tuple[np.ndarray, int]:
    folder = require_shared_data("dicom", "ge", "In", "05_3D_Ax_T1_MP_RAGE_R22")
    files = sorted(folder.iterdir())
    return _stored(files[len(files) // 2])


def test_registered_and_specs() -> None:
    assert "neural" in codec_names()
    lossless = get_codec("neural:mode=lossless")
    assert lossless.mode is CodecMode.LOSSLESS and lossless.max_error == 0
    assert get_codec("neural").lossless
    bounded = get_codec("neural:mode=near-lossless,tau=2")
    assert bounded.mode is CodecMode.BOUNDED and bounded.max_error == 2
    assert get_codec("neural:tau=4").max_error == 4
    assert get_codec("neural:period=10").describe()["period"] == 10
    for bad in ("neural:mode=bogus", "neural:mode=lossless,tau=2", "neural:tau=-1",
                "neural:mode=near-lossless,tau=0", "neural:interslice=3", "neural:fallback=3",
                "neural:colour=1"):
        with pytest.raises(FedcodecError):
            get_codec(bad)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (257, 129), (2, 64), (64, 1)])
@pytest.mark.parametrize("bits", [8, 12, 16])
def test_lossless_round_trip_synthetic(shape: tuple[int, int], bits: int) -> None:
    codec = get_codec("neural:fallback=0,interslice=2")
    image = phantom(shape, bits, seed=bits)
    data = codec.encode(image, bits)
    out = codec.decode(data)
    assert out.dtype == image.dtype and out.shape == image.shape
    np.testing.assert_array_equal(out, image)


def test_lossless_extreme_images() -> None:
    codec = get_codec("neural:fallback=0,interslice=2")
    rng = np.random.default_rng(3)
    cases = [
        (np.zeros((40, 33), np.uint16), 12),
        (np.full((17, 9), 65535, np.uint16), 16),
        (rng.integers(0, 1 << 16, (31, 45)).astype(np.uint16), 16),  # white noise: escapes
        (rng.integers(0, 2, (20, 20)).astype(np.uint8), 1),
        ((np.indices((50, 50)).sum(0) % 2 * 4095).astype(np.uint16), 12),  # checkerboard edges
    ]
    for image, bits in cases:
        np.testing.assert_array_equal(codec.decode(codec.encode(image, bits)), image)


def test_lossless_real_slices() -> None:
    codec = get_codec("neural:fallback=0,interslice=2")
    image, bits = ge_t1_slice()
    data = codec.encode(image, bits)
    np.testing.assert_array_equal(codec.decode(data), image)
    assert len(data) * 8 < image.size * bits / 2  # a real MR slice compresses well below raw
    volume, bits = ge_fmri()
    np.testing.assert_array_equal(codec.decode(codec.encode(volume[0], bits)), volume[0])


@pytest.mark.parametrize("tau", [1, 2, 4])
def test_near_lossless_bound_on_every_pixel(tau: int) -> None:
    codec = get_codec(f"neural:mode=near-lossless,tau={tau},fallback=0,interslice=2")
    lossless = get_codec("neural:fallback=0,interslice=2")
    image, bits = ge_t1_slice()
    for img, b in ((image, bits), (phantom((129, 67), 12, seed=tau, noise=0.02), 12)):
        data = codec.encode(img, b)
        out = codec.decode(data)
        err = np.abs(out.astype(np.int64) - img)
        assert err.max() <= tau
        assert err.max() == tau  # it really is near-lossless, not lossless
        assert len(data) < len(lossless.encode(img, b))
    volume, bits = ge_fmri()
    out = codec.decode_volume(codec.encode_volume(volume[:12], bits))
    assert np.abs(out.astype(np.int64) - volume[:12]).max() <= tau


def test_volume_round_trip_uses_previous_slices() -> None:
    volume, bits = ge_fmri()
    assert detect_period(volume) == 10
    codec = get_codec("neural:fallback=0,interslice=2")
    streams = codec.encode_volume(volume, bits)
    np.testing.assert_array_equal(codec.decode_volume(streams), volume)
    offsets = [unpack(s)[0].ref_offsets for s in streams]
    assert offsets[0] == () and offsets[1] == (1,) and offsets[10] == (10,) and offsets[11] == (10, 1)
    # this GE run repeats one volume: later volumes are copies (header only), earlier ones coded
    assert not unpack(streams[9])[0].copy and unpack(streams[10])[0].copy
    assert len(streams[25]) < 20
    bumped = volume.copy()
    bumped[12, 5, 5] += 1  # no longer an exact repeat: coded, still bit-exact
    bumped_streams = codec.encode_volume(bumped, bits)
    assert not unpack(bumped_streams[12])[0].copy
    np.testing.assert_array_equal(codec.decode_volume(bumped_streams), bumped)
    # ... but within tau=1 it is a copy for the near-lossless codec
    near = get_codec("neural:tau=1,fallback=0,interslice=2").encode_volume(bumped, bits)
    assert unpack(near[12])[0].copy
    # the context pays: far fewer bytes than coding every slice alone
    alone = get_codec("neural:interslice=0,fallback=0").encode_volume(volume, bits)
    assert all(unpack(s)[0].ref_offsets == () for s in alone)
    assert sum(map(len, streams)) < 0.9 * sum(map(len, alone))
    # an explicit period wins over detection; period=0 means previous slice only
    forced = "fallback=0,interslice=2"
    five = get_codec(f"neural:period=5,{forced}").encode_volume(volume[:7], bits)
    assert unpack(five[6])[0].ref_offsets == (5, 1)
    none = get_codec(f"neural:period=0,{forced}").encode_volume(volume[:12], bits)
    assert unpack(none[11])[0].ref_offsets == (1,)
    # stream 0 stands alone; a dependent stream alone is a clear error
    np.testing.assert_array_equal(codec.decode(streams[0]), volume[0])
    with pytest.raises(CorruptDataError, match="decode_volume"):
        codec.decode(streams[11])
    with pytest.raises(CorruptDataError):
        codec.decode_volume(streams[10:])


def test_volume_odd_shapes_and_bits() -> None:
    codec = get_codec("neural:fallback=0,interslice=2")
    rng = np.random.default_rng(5)
    base = phantom((23, 41), 8, seed=2)
    volume = np.stack([np.clip(base.astype(int) + rng.integers(-3, 4, base.shape), 0, 255)
                       for _ in range(6)]).astype(np.uint8)
    np.testing.assert_array_equal(codec.decode_volume(codec.encode_volume(volume, 8)), volume)
    single = np.stack([phantom((1, 1), 16)] * 3)
    np.testing.assert_array_equal(codec.decode_volume(codec.encode_volume(single, 16)), single)


def test_corrupt_streams_raise() -> None:
    codec = get_codec("neural:fallback=0,interslice=2")
    image, bits = ge_t1_slice()
    data = codec.encode(image[:64, :64], bits)
    header_len = len(data) - 4 * unpack(data)[1].size
    rng = np.random.default_rng(0)
    bad = [b"", b"\xa1", b"not a stream", data[:-4], data[:-1], data[: header_len + 4],
           data[:header_len - 2], bytes([0x00]) + data[1:], data[:1] + b"\xf3" + data[2:],
           data[:1] + bytes([data[1] ^ 0x80]) + data[2:]]
    for _ in range(24):  # bit flips anywhere in the payload
        flipped = bytearray(data)
        pos = int(rng.integers(header_len, len(data)))
        flipped[pos] ^= 1 << int(rng.integers(8))
        bad.append(bytes(flipped))
    wrong_model = bytearray(data)
    wrong_model[header_len - 6] ^= 0xFF  # model id: 2 bytes before the 4-byte CRC
    bad.append(bytes(wrong_model))
    for stream in bad:
        with pytest.raises(CorruptDataError):
            codec.decode(stream)
    with pytest.raises(CorruptDataError, match="model"):
        codec.decode(bytes(wrong_model))


def test_bad_input_is_a_clear_error() -> None:
    codec = get_codec("neural:fallback=0,interslice=2")
    with pytest.raises(FedcodecError):
        codec.encode(np.zeros((4, 4), np.float32), 8)
    with pytest.raises(FedcodecError):
        codec.encode(np.full((4, 4), 300, np.uint16), 8)
    with pytest.raises(FedcodecError):
        codec.encode(np.zeros((2, 4, 4), np.uint16), 12)
    with pytest.raises(FedcodecError):
        codec.encode_volume(np.zeros((4, 4), np.uint16), 12)


def test_period_detection() -> None:
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:48, 0:48]
    positions = 6
    # anatomy drifts slowly from slice to slice; each volume has its own contrast (like DTI
    # directions): the neighbouring slice is closer than the previous volume, which is still a
    # clear dip against lags 5 and 7
    anatomy = [600 + 400 * np.sin(x / 6.0 + 0.1 * p) * np.cos(y / 7.0 - 0.07 * p)
               for p in range(positions)]
    gains = [1.0, 0.93, 0.86, 0.8, 0.75]
    volume = np.stack([np.clip(a * g + rng.normal(0, 5, a.shape), 0, 4095)
                       for g in gains for a in anatomy]).astype(np.uint16)
    assert detect_period(volume) == positions
    single = np.stack([np.clip(anatomy[0] * (1 + 0.02 * i), 0, 4095) for i in range(20)])
    assert detect_period(single.astype(np.uint16)) == 1  # a plain stack: previous slice only
    assert detect_period(volume[:3]) == 1
