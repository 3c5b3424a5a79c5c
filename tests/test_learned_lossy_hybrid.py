"""Hybrid mode (``neural-lossy:mode=hybrid,tau=T``): every pixel within tau, preview, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_shared_data
from fedcodec.shared.codecs.base import CodecMode, get_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.learned_lossy.codec import decode_preview
from fedcodec.shared.metrics import max_abs_error, psnr


def _noisy(rows: int, cols: int, bits: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    top = (1 << bits) - 1
    image = 0.3 * top * (1 + np.sin(x / 7.0) * np.cos(y / 11.0)) + rng.normal(0, top / 100, y.shape)
    return np.clip(np.rint(image), 0, top).astype(np.uint16 if bits > 8 else np.uint8)


def test_spec_is_bounded() -> None:
    codec = get_codec("neural-lossy:mode=hybrid,tau=2")
    assert codec.mode is CodecMode.BOUNDED and codec.max_error == 2
    for bad in ("neural-lossy:mode=hybrid", "neural-lossy:mode=hybrid,tau=0",
                "neural-lossy:mode=hybrid,tau=2,quality=3", "neural-lossy:mode=hybrid,tau=2,base=5",
                "neural-lossy:mode=hybrid,tau=2,base=foo"):
        with pytest.raises(FedcodecError):
            get_codec(bad)


@pytest.mark.parametrize("tau", [1, 2, 4])
@pytest.mark.parametrize("shape", [(5, 7), (61, 47), (96, 128)])
def test_every_pixel_within_tau(tau: int, shape: tuple[int, int]) -> None:
    image = _noisy(*shape, seed=tau)
    codec = get_codec(f"neural-lossy:mode=hybrid,tau={tau}")
    out = codec.decode(codec.encode(image, 12))
    assert out.shape == shape and out.dtype == np.uint16
    assert max_abs_error(image, out) <= tau


def test_uint8_and_16_bit() -> None:
    for bits in (8, 16):
        image = _noisy(40, 52, bits=bits)
        codec = get_codec("neural-lossy:mode=hybrid,tau=2")
        out = codec.decode(codec.encode(image, bits))
        assert out.dtype == image.dtype and max_abs_error(image, out) <= 2


def test_preview_is_the_base_layer() -> None:
    image = _noisy(64, 72)
    codec = get_codec("neural-lossy:mode=hybrid,tau=2,base=40")
    data = codec.encode(image, 12)
    preview = decode_preview(data)
    full = codec.decode(data)
    assert preview.shape == image.shape
    assert psnr(image, preview, 12) < psnr(image, full, 12)
    assert max_abs_error(image, full) <= 2
    bare = get_codec("neural-lossy:mode=hybrid,tau=2,base=none").encode(image, 12)
    assert decode_preview(bare) is None
    assert max_abs_error(image, codec.decode(bare)) <= 2


def test_real_slice_within_tau_and_below_raw(shared_data) -> None:
    from fedcodec.shared.dicom.read import read_series
    from fedcodec.shared.pixels import to_unsigned

    folder = require_shared_data("dicom", "siemens", "siemens_c")
    series, _ = read_series(folder)
    s = series[0]
    image, _ = to_unsigned(s.volume[0], s.bits_stored, s.signed)
    codec = get_codec("neural-lossy:mode=hybrid,tau=2")
    data = codec.encode(image, s.bits_stored)
    assert max_abs_error(image, codec.decode(data)) <= 2
    assert 8 * len(data) / image.size < s.bits_stored


def test_corrupt_hybrid_streams_raise() -> None:
    codec = get_codec("neural-lossy:mode=hybrid,tau=2")
    data = codec.encode(_noisy(48, 48), 12)
    flipped = bytearray(data)
    flipped[40] ^= 0x01
    for stream in (data[:-3], data[:20], bytes(flipped), b"FLL1" + bytes(60)):
        with pytest.raises(CorruptDataError):
            codec.decode(stream)
