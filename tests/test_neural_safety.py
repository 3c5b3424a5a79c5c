"""The neural codec's encoder-side guarantees and stream compatibility.

* a slice coded with references is never larger than the same slice coded alone, and the
  choice is signalled in the stream (its reference offsets);
* the classical fallback: a slice goes out as the smallest classical stream when that is
  smaller than the learned one, decodes from its signature alone, and serves as a reference;
* streams written before these changes (format 0xA1, neural v1) still decode; an unknown
  neural format byte is refused with a one-line error naming it.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural.fallback import candidates, is_classical
from fedcodec.shared.neural.stream_format import unpack

OLD_IMAGE = (np.arange(64).reshape(8, 8) * 37 % 4096).astype(np.uint16)
OLD_STREAMS = (
    "a18b080819a27e58f6c000003890df8e8b37951dbb94ea8f49a242cd82a263ea6a50eef294d347da7647a3f8"
    "0f42c8efc605777066df7960e89f1d0af77fe48c797230b17736c3b4a73373d5fd3acea9a61bf7ffff19af0e"
    "00bb0d000000",
    "a19b08080119a2fd924e8bfcaf89d34fc1862dbc44ff406faaf3dcc064673ffceffe4fc24566c2ff6acb85c8"
    "a8fac4fb939a2c4b32a0466776fbfee31e00fd3f060900",
    "a19b08080119a246ae3e83000010b63d1f8b40957d912b82849900410d23c81663cd3e3a6da93b42eadc0427"
    "72663853dc00a166cf74bec6007ef76ebd064d4e7efa6adcd801ed04a8a5494bf733c379f10240f3ffff51fd"
    "ffffdc8d8781fe6fd95431",
)
"""``neural`` (shipped weights) on (OLD_IMAGE, OLD_IMAGE ^ 1, OLD_IMAGE[::-1]), written by the
encoder before references were checked and the fallback existed (every slice referenced)."""


def _anatomy(rng: np.random.Generator, shape=(48, 40), noise=15.0) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = 1500 + 700 * np.sin(x / 7.0) * np.cos(y / 11.0) + rng.normal(0, noise, shape)
    return np.clip(np.rint(image), 0, 4095).astype(np.uint16)


def _stripes() -> np.ndarray:
    """Every column constant: JPEG XL's N predictor codes it almost for free."""
    x = np.arange(64)
    return np.repeat((1000 + 300 * np.sin(x / 2.3)).astype(np.uint16)[None], 64, axis=0)


def test_streams_from_before_still_decode() -> None:
    volume = np.stack([OLD_IMAGE, OLD_IMAGE ^ 1, OLD_IMAGE[::-1]])
    decoded = get_codec("neural").decode_volume([bytes.fromhex(s) for s in OLD_STREAMS])
    np.testing.assert_array_equal(decoded, volume)


@pytest.mark.parametrize("magic", [0xA5, 0xAF])
def test_unknown_neural_format_is_refused_naming_it(magic: int) -> None:
    stream = bytearray.fromhex(OLD_STREAMS[0])
    stream[0] = magic
    with pytest.raises(CorruptDataError, match=f"0x{magic:02X}") as info:
        get_codec("neural").decode(bytes(stream))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("tau", [0, 2])
def test_references_never_make_a_slice_larger(tau: int) -> None:
    rng = np.random.default_rng(5)
    base = _anatomy(rng)
    unrelated = _anatomy(rng)[::-1, ::-1].copy()
    # slice 1 repeats slice 0 with new noise (references help); slice 2 is unrelated to slice 1
    volume = np.stack([base, _anatomy(np.random.default_rng(6)), unrelated])
    checked = get_codec(f"neural:tau={tau},fallback=0")
    forced = get_codec(f"neural:tau={tau},fallback=0,interslice=2")
    streams = checked.encode_volume(volume, 12)
    decoded = checked.decode_volume(streams)
    assert np.abs(decoded.astype(np.int64) - volume).max() <= tau
    alone = get_codec(f"neural:tau={tau},fallback=0,interslice=0").encode_volume(volume, 12)
    for mine, single in zip(streams, alone, strict=True):
        assert len(mine) <= len(single)
    forced_streams = forced.encode_volume(volume, 12)
    assert sum(map(len, streams)) <= sum(map(len, forced_streams))
    # slice 1 keeps its reference, slice 2 (unrelated) is coded alone: both signalled
    assert unpack(streams[1])[0].ref_offsets == (1,)
    assert unpack(forced_streams[2])[0].ref_offsets == (1,)
    if len(alone[2]) < len(forced_streams[2]):
        assert unpack(streams[2])[0].ref_offsets == ()


def test_classical_fallback_when_smaller_lossless() -> None:
    image = _stripes()
    learned = get_codec("neural:fallback=0").encode(image, 12)
    product = get_codec("neural").encode(image, 12)
    assert is_classical(product) and not is_classical(learned)
    smallest = min(len(get_codec(spec).encode(image, 12)) for spec in candidates(0, 1))
    assert len(product) == min(smallest, len(learned))
    np.testing.assert_array_equal(get_codec("neural").decode(product), image)
    # a classical slice in the middle of a volume is a reference for the next one
    rng = np.random.default_rng(1)
    volume = np.stack([_anatomy(rng, (64, 64)), image, image + 1, _anatomy(rng, (64, 64))])
    streams = get_codec("neural").encode_volume(volume, 12)
    assert is_classical(streams[1])
    np.testing.assert_array_equal(get_codec("neural:fallback=0").decode_volume(streams), volume)


def test_classical_fallback_near_lossless_and_never_worse() -> None:
    image = _stripes()
    codec = get_codec("neural:tau=2")
    stream = codec.encode(image, 12)
    assert stream[:2] == b"\xff\xd8"  # JPEG-LS near-lossless wins on the stripes
    assert len(stream) <= len(get_codec("neural:tau=2,fallback=0").encode(image, 12))
    assert np.abs(codec.decode(stream).astype(np.int64) - image).max() <= 2
    # on a noisy anatomical slice the learned stream is kept when it is the smaller one
    noisy = _anatomy(np.random.default_rng(2), (64, 64), noise=40.0)
    for tau in (0, 2):
        product = get_codec(f"neural:tau={tau}").encode(noisy, 12)
        learned = get_codec(f"neural:tau={tau},fallback=0").encode(noisy, 12)
        assert len(product) <= min(len(learned), *(len(get_codec(c).encode(noisy, 12))
                                                   for c in candidates(tau, 1)))


def test_corrupt_classical_stream_is_a_one_line_error() -> None:
    stream = get_codec("neural").encode(_stripes(), 12)
    with pytest.raises(CorruptDataError) as info:
        get_codec("neural").decode(stream[: len(stream) // 2])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("offset", [-24, -5, 7, 24])
@pytest.mark.parametrize("tau", [0, 2])
def test_every_scale_offset_round_trips(offset: int, tau: int) -> None:
    from fedcodec.shared.neural.codec import load_weights
    from fedcodec.shared.neural.slice_coder import SliceParams, decode_slice, encode_slice
    from fedcodec.shared.neural.weights import DEFAULT_WEIGHTS

    weights, models = load_weights(str(DEFAULT_WEIGHTS))
    image = _anatomy(np.random.default_rng(offset + 100), (33, 29))
    params = SliceParams(12, tau, offset)
    words, recon = encode_slice(image, params, [], weights, models)
    np.testing.assert_array_equal(decode_slice(words, image.shape, params, [], weights, models),
                                  recon)
    assert np.abs(recon - image.astype(np.int64)).max() <= tau


@pytest.mark.parametrize("tau", [0, 2])
def test_adapted_stream_is_signalled_smaller_and_round_trips(tau: int) -> None:
    # far noisier than anything trained on: the encoder widens the scales for this slice
    image = _anatomy(np.random.default_rng(9), (64, 64), noise=300.0)
    adapted = get_codec(f"neural:tau={tau},fallback=0").encode(image, 12)
    plain = get_codec(f"neural:tau={tau},fallback=0,adapt=0").encode(image, 12)
    header = unpack(adapted)[0]
    # (0xA8 when it also truncates to the slice's range: the noise is clipped at 0 and 4095)
    assert adapted[0] in (0xA4, 0xA8) and header.scale_offset != 0 and plain[0] == 0xA1
    assert len(adapted) < len(plain)
    decoded = get_codec("neural").decode(adapted)
    assert np.abs(decoded.astype(np.int64) - image).max() <= tau


def _on_a_floor(rng: np.random.Generator) -> np.ndarray:
    """Anatomy inside a background masked to exactly the floor, as signed MR data shifted by
    32768 arrives: the network cannot know that nothing lies below 32768."""
    image = _anatomy(rng, (64, 64), noise=20.0).astype(np.int64) - 1400
    image[:, :20] = rng.poisson(0.4, (64, 20))
    return (np.clip(image, 0, None) + 32768).astype(np.uint16)


@pytest.mark.parametrize("spec", ["", ",tau=2", ",tau=2,centroid=1"])
def test_bounded_range_is_signalled_smaller_and_round_trips(spec: str) -> None:
    import dataclasses

    from fedcodec.shared.neural.codec import load_weights
    from fedcodec.shared.neural.adaptive_encoder import encode_slice_adaptive
    from fedcodec.shared.neural.slice_coder import SliceParams, decode_slice, encode_slice
    from fedcodec.shared.neural.weights import DEFAULT_WEIGHTS

    image = _on_a_floor(np.random.default_rng(11))
    tau = 2 if "tau" in spec else 0
    stream = get_codec(f"neural:fallback=0{spec}").encode(image, 16)
    header = unpack(stream)[0]
    assert stream[0] == 0xA8 and header.bounds == (int(image.min()), int(image.max()))
    assert header.tau == tau and header.centroid == ("centroid" in spec)
    assert unpack(get_codec(f"neural:fallback=0,truncate=0{spec}").encode(image, 16))[0].bounds \
        is None
    decoded = get_codec("neural").decode(stream).astype(np.int64)
    assert np.abs(decoded - image).max() <= tau

    weights, models = load_weights(str(DEFAULT_WEIGHTS))
    start = SliceParams(16, tau, centroid="centroid" in spec)
    words, recon, params = encode_slice_adaptive(image, start, [], weights, models)
    assert params.bounds is not None
    unbounded, same = encode_slice(image, dataclasses.replace(params, bounds=None), [],
                                   weights, models)
    np.testing.assert_array_equal(same, recon)  # the range changes the tables, not the pixels
    assert words.size < 0.98 * unbounded.size  # the floor's pixels no longer pay for below it
    np.testing.assert_array_equal(decode_slice(words, image.shape, params, [], weights, models),
                                  recon)


def test_full_range_slice_writes_no_range() -> None:
    image = _anatomy(np.random.default_rng(12), (40, 40))
    image[0, 0], image[-1, -1] = 0, 4095
    stream = get_codec("neural:fallback=0").encode(image, 12)
    assert unpack(stream)[0].bounds is None


def test_bad_bounded_range_is_a_one_line_error() -> None:
    from fedcodec.shared.neural.stream_format import StreamHeader, pack, write_varint

    stream = bytearray(get_codec("neural:fallback=0,meanfit=0,groupscale=0").encode(
        _on_a_floor(np.random.default_rng(13)), 16))
    assert stream[0] == 0xA8
    header = unpack(bytes(stream))[0]
    # the header ends with: offset byte, flags byte, varint lo, varint (max - hi), model id,
    # CRC, payload
    lo_at = bytes(stream).index(write_varint(header.bounds[0]) + write_varint(
        65535 - header.bounds[1]) + header.model_id)
    stream[lo_at : lo_at + 3] = write_varint(65000)[:3]  # lo above hi
    with pytest.raises(CorruptDataError, match="bounded range") as info:
        get_codec("neural").decode(bytes(stream))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="coded slices"):
        pack(StreamHeader(4, 4, 12, 0, True, (1,), b"\0\0", 0, copy=True, bounds=(0, 10)),
             np.zeros(0))
    stream[lo_at - 1] = 32  # an unknown flag (bit 5; bit 4 is the near-lossless tables)
    with pytest.raises(CorruptDataError, match="flags"):
        get_codec("neural").decode(bytes(stream))


def _interpolated(rng: np.random.Generator, side: int = 64, factor: int = 3) -> np.ndarray:
    """A slice the scanner interpolated to ``factor`` times its acquired matrix (linearly, per
    axis): its pixels follow a kernel the network never learned."""
    y, x = np.mgrid[0:side, 0:side]
    coarse = 1500 + 700 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 40, (side, side))
    fine = np.linspace(0, side - 1, factor * side)
    rows = np.array([np.interp(fine, np.arange(side), r) for r in coarse])
    both = np.array([np.interp(fine, np.arange(side), c) for c in rows.T]).T
    return np.clip(np.rint(both), 0, 4095).astype(np.uint16)


@pytest.mark.parametrize("spec", ["", ",tau=2", ",tau=2,centroid=1"])
def test_mean_correction_is_signalled_smaller_and_round_trips(spec: str) -> None:
    from fedcodec.shared.neural import mean_fit

    image = _interpolated(np.random.default_rng(3))
    stream = get_codec(f"neural:fallback=0{spec}").encode(image, 12)
    header = unpack(stream)[0]
    assert stream[0] == 0xA8 and header.corrections
    assert all(len(w) in mean_fit.tap_counts(mean_fit.GROUPS[i % 3])
               for i, w in header.corrections)
    decoded = get_codec("neural").decode(stream).astype(np.int64)
    assert np.abs(decoded - image).max() <= header.tau
    plain = get_codec(f"neural:fallback=0,meanfit=0{spec}").encode(image, 12)
    assert not unpack(plain)[0].corrections
    assert len(stream) < 0.95 * len(plain)  # measured 0.88 lossless


def test_bad_mean_correction_is_refused() -> None:
    from fedcodec.shared.neural.stream_format import StreamHeader, pack

    good = ((0, tuple(range(12))),)
    pack(StreamHeader(4, 4, 12, 0, True, (), b"\0\0", 0, corrections=good), np.zeros(0))
    wide = ((1, tuple(range(60))), (2, (3,)))  # every tap of C; the nearest one of D
    header = StreamHeader(4, 4, 12, 0, True, (), b"\0\0", 0, corrections=wide)
    assert unpack(pack(header, np.zeros(0)))[0] == header  # counted (flags bit 5)
    for tau, corrections in ((0, good + good), (0, ((1, (1,) * 61),)), (0, ((0, ()),)),
                             (2, ((2, (1 << 12,) * 16),))):
        with pytest.raises(ValueError, match="mean correction"):
            pack(StreamHeader(4, 4, 12, tau, True, (), b"\0\0", 0, corrections=corrections),
                 np.zeros(0))
    stream = bytearray(get_codec("neural:fallback=0").encode(
        _interpolated(np.random.default_rng(3)), 12))
    flags_at = stream.index(bytes([unpack(bytes(stream))[0].scale_offset + 128]), 4) + 1
    for flags in (0, 1, 17, 32, 64):  # none, centroid alone, count without corrections
        tampered = bytearray(stream)
        tampered[flags_at] = flags
        with pytest.raises(CorruptDataError, match="flags|malformed|bad|truncated|without"
                           ) as info:
            get_codec("neural").decode(bytes(tampered))
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", ["", ",tau=2"])
def test_group_scale_offsets_are_signalled_smaller_and_round_trip(spec: str) -> None:
    image = _interpolated(np.random.default_rng(3))  # corrected groups narrow, others do not
    stream = get_codec(f"neural:fallback=0{spec}").encode(image, 12)
    header = unpack(stream)[0]
    assert stream[0] == 0xA8 and header.group_offsets
    decoded = get_codec("neural").decode(stream).astype(np.int64)
    assert np.abs(decoded - image).max() <= header.tau
    single = get_codec(f"neural:fallback=0,groupscale=0{spec}").encode(image, 12)
    assert not unpack(single)[0].group_offsets and len(stream) < len(single)


def test_bad_group_scale_offset_is_refused() -> None:
    from fedcodec.shared.neural.stream_format import StreamHeader, pack

    pack(StreamHeader(4, 4, 12, 0, True, (), b"\0\0", 0, scale_offset=20,
                      group_offsets=((0, 4), (5, -3))), np.zeros(0))
    for pairs in (((0, 0),), ((5, 1), (2, 1)), ((0, 5),)):  # zero, unsorted, beyond 24
        with pytest.raises(ValueError, match="scale offset for group"):
            pack(StreamHeader(4, 4, 12, 0, True, (), b"\0\0", 0, scale_offset=20,
                              group_offsets=pairs), np.zeros(0))
