"""Level bounds (stream 0xAA): the coarse pyramid levels coded within a finer bound than level 0.

The rule, the stream field (written, read, refused when inconsistent), exact decoding with every
pixel within its own level's bound (so within the slice's recorded tau), the PSNR it buys at a
bound, and the defaults of ``neural:mode=lossy`` (on for quality and rate targets, off for a
bound target)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_neural_safety import _interpolated

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.metrics import psnr
from fedcodec.shared.neural.bounded_lossy import recorded_bound
from fedcodec.shared.neural.codec import _weights_path, load_weights
from fedcodec.shared.neural.level_bounds import DEFAULT_RATIO, level_taus
from fedcodec.shared.neural.slice_coder import SliceParams, decode_slice, encode_slice
from fedcodec.shared.neural.stream_format import (
    LEVELS_MAGIC,
    StreamHeader,
    pack,
    unpack,
    write_varint,
)


def _levels(shape: tuple[int, int]) -> np.ndarray:
    """The pyramid level each pixel is coded at (level l: both coordinates multiples of 2**l,
    not both of 2**(l+1)); the top pixel (0, 0) gets a large number."""
    y, x = np.indices(shape)
    level = np.full(shape, 99)
    for lev in range(20, -1, -1):
        level[((y >> lev) << lev == y) & ((x >> lev) << lev == x) & (level == 99)] = lev
    # (0, 0) matched every level; undo for it: it is the lossless top pixel
    level[0, 0] = 99
    return level


def _anatomy(seed: int = 2, shape: tuple[int, int] = (96, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    image = 1500 + 800 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 25, shape)
    return np.clip(np.rint(image), 0, 4095).astype(np.uint16)


def test_rule() -> None:
    assert level_taus(40, (1024, 1024), 0.7) == (28, 19, 13, 9, 6, 4, 3, 2, 1)
    assert level_taus(40, (484, 484), 0.7) == (28, 19, 13, 9, 6, 4, 3, 2)  # 8 coarse levels
    assert level_taus(1, (64, 64), 0.7) == (0,)  # the trailing repeats dropped
    assert level_taus(40, (64, 64), 1.0) == () and level_taus(0, (64, 64), 0.5) == ()
    assert level_taus(40, (2, 1), 0.7) == ()  # no coarse level
    assert level_taus(3, (64, 64), 0.99) == (2,)  # floor(3 * 0.99**l) = 2 on every level
    assert level_taus(300, (64, 64), 0.99)[0] == 297
    with pytest.raises(ValueError):
        level_taus(4, (64, 64), 0.0)


def test_every_pixel_within_its_level_bound_and_decodes_exactly() -> None:
    weights, models = load_weights(_weights_path(None))
    image = _anatomy()
    tau = 30
    bounds = level_taus(tau, image.shape, 0.5)
    for centroid in (False, True):
        params = SliceParams(12, tau, centroid=centroid, level_taus=bounds)
        words, recon = encode_slice(image, params, [], weights, models)
        error = np.abs(recon.astype(np.int64) - image)
        level = _levels(image.shape)
        for lev in range(1, len(bounds) + 3):
            at = level == lev
            if at.any():
                assert error[at].max() <= bounds[min(lev, len(bounds)) - 1]
        assert error[level == 0].max() <= tau and error[0, 0] == 0
        assert error[level >= 1].max() < tau  # finer there, as asked
        decoded = decode_slice(words, image.shape, params, [], weights, models)
        np.testing.assert_array_equal(decoded, recon)
        # a decoder told one bound everywhere does not rebuild this slice
        other = dataclasses.replace(params, level_taus=())
        try:
            wrong = decode_slice(words, image.shape, other, [], weights, models)
        except CorruptDataError:
            continue
        assert not np.array_equal(wrong, recon)


def test_near_lossless_tables_per_level_decode_exactly() -> None:
    """With the model's near-lossless tables each level codes with the set of its own bound;
    the decoder takes the same sets from the stream's bounds."""
    weights, models = load_weights(_weights_path(None))
    if not weights.cell_counts:
        pytest.skip("the default model has no near-lossless tables")
    image = _anatomy(4)
    tau = 48
    params = SliceParams(12, tau, centroid=True, cell_tables=True,
                         level_taus=level_taus(tau, image.shape, DEFAULT_RATIO))
    near = models.for_bound(tau)
    words, recon = encode_slice(image, params, [], weights, near)
    np.testing.assert_array_equal(decode_slice(words, image.shape, params, [], weights, near),
                                  recon)
    assert {params.models_at(near, lev) is near for lev in range(1, 6)} == {True, False}
    assert np.abs(recon.astype(np.int64) - image).max() <= tau


def test_codec_streams_record_the_bounds_and_buy_psnr_at_a_bound() -> None:
    image = _interpolated(np.random.default_rng(3))  # 192x192 12-bit
    plain = get_codec("neural:tau=40,centroid=1,fallback=0")
    levels = get_codec("neural:tau=40,centroid=1,fallback=0,coarse=0.7")
    a, b = plain.encode(image, 12), levels.encode(image, 12)
    header = unpack(b)[0]
    assert b[0] == LEVELS_MAGIC and a[0] != LEVELS_MAGIC
    assert header.tau == 40 and header.level_taus == level_taus(40, image.shape, 0.7)
    assert recorded_bound(b) == 40  # what the DICOM writer and the bench read
    out_a, out_b = plain.decode(a), levels.decode(b)
    assert np.abs(out_b.astype(np.int64) - image).max() <= 40
    # finer coarse levels: a higher PSNR at the same guaranteed bound, for more bytes
    assert psnr(image, out_b, 12) > psnr(image, out_a, 12) + 1.0 and len(b) > len(a)
    # any decoder reads it: the plain codec decodes the level-bound stream
    np.testing.assert_array_equal(plain.decode(b), out_b)
    assert levels.describe()["coarse"] == 0.7 and "coarse" not in plain.describe()


def test_lossy_defaults_and_bad_values() -> None:
    assert get_codec("neural:mode=lossy,psnr=50").coarse == DEFAULT_RATIO
    assert get_codec("neural:mode=lossy,bpp=1").coarse == DEFAULT_RATIO
    assert get_codec("neural:mode=lossy,max_error=8").coarse == 1.0
    assert get_codec("neural:mode=lossy,psnr=50,coarse=1").coarse == 1.0
    assert get_codec("neural").coarse == 1.0  # lossless and neural:tau= unchanged
    for bad in ("0", "1.5", "-0.2"):
        with pytest.raises(FedcodecError, match="coarse"):
            get_codec(f"neural:tau=4,coarse={bad}")


def test_psnr_target_met_with_level_bounds_and_a_looser_bound() -> None:
    image = _interpolated(np.random.default_rng(3))
    codec = get_codec("neural:mode=lossy,psnr=48")
    (data,) = codec.encode_volume(image[None], 12)
    out = codec.decode(data)
    assert psnr(image, out, 12) >= 48
    header = unpack(data)[0]
    assert header.level_taus and np.abs(out.astype(np.int64) - image).max() <= header.tau
    one = get_codec("neural:mode=lossy,psnr=48,coarse=1")
    (plain,) = one.encode_volume(image[None], 12)
    # the same target at a looser guaranteed bound (the coarse levels carry the PSNR)
    assert header.tau > unpack(plain)[0].tau


def _header(**changes) -> StreamHeader:
    base = StreamHeader(8, 8, 12, 20, True, (), bytes(2), 0, level_taus=(14, 9, 6))
    return dataclasses.replace(base, **changes)


def test_stream_field_round_trips_and_bad_fields_are_refused() -> None:
    words = np.arange(3, dtype=np.uint32)
    data = pack(_header(), words)
    header, back = unpack(data)
    assert data[0] == LEVELS_MAGIC and header.level_taus == (14, 9, 6)
    np.testing.assert_array_equal(back, words)
    for bad in ((21, 3), (-1,)):
        with pytest.raises(ValueError):
            pack(_header(level_taus=bad), words)
    with pytest.raises(ValueError):  # not with a refinement layer or a copy
        pack(_header(window_bound=40, ref_offsets=(1,)), words)
    # hostile headers: a bound above tau, no bounds, a truncated list
    tail = len(write_varint(3)) + 3 + 2 + 4 + 12  # count, bounds, model id, CRC, payload
    start = len(data) - tail
    above = data[:start] + write_varint(3) + bytes([14, 21, 6]) + data[start + 4:]
    with pytest.raises(CorruptDataError, match="above tau"):
        unpack(above)
    none = data[:start] + write_varint(0) + data[start + 4:]
    with pytest.raises(CorruptDataError, match="level bounds"):
        unpack(none)
    with pytest.raises(CorruptDataError):
        unpack(data[:start + 2])
    # a lossless stream cannot carry level bounds
    lossless = bytes([LEVELS_MAGIC, data[1] & ~0x40]) + data[2:3] + data[3:4] + data[5:]
    with pytest.raises(CorruptDataError):
        unpack(lossless)
