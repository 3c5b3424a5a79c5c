"""Classical codecs behind the registry: round trips, guarantees, rates, and failure modes.

Images: real MR from pydicom's bundled test files (resolved by path, never downloaded) and
synthetic MR-like phantoms at 1..16 bits, including degenerate sizes and values.
"""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path

import jpeg_ls
import numpy as np
import openjpeg
import pydicom
import pytest

from fedcodec.shared.codecs.base import CodecMode, codec_names, get_codec
from fedcodec.shared.codecs.rate_search import encode_within_budget
from fedcodec.shared.errors import CorruptDataError, FedcodecError, UnknownNameError
from fedcodec.shared.metrics import compression_ratio, max_abs_error, psnr
from fedcodec.shared.pixels import to_unsigned

SITE_PACKAGES = Path(pydicom.__file__).resolve().parents[1]
PYDICOM_FILES = SITE_PACKAGES / "pydicom" / "data" / "test_files"
PYDICOM_DATA = SITE_PACKAGES / "data_store" / "data"

LOSSLESS_SPECS = ["jpegls", "j2k", "htj2k", "jxl", "jxl:effort=1", "zstd", "zstd:level=1"]
LOSSY_SPECS = [
    "j2k:ratio=8", "htj2k:ratio=8", "htj2k:qstep=0.001", "jxl:distance=1", "jxl:quality=80"
]
BOUNDED_SPECS = ["jpegls:tau=1", "jpegls:tau=2", "jpegls:tau=4"]


def phantom(shape: tuple[int, int], bits: int, noise: float, seed: int) -> np.ndarray:
    """An MR-like image: a bright ellipse with a smooth bias field, a darker core, and noise."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols]
    ny, nx = (y - rows / 2) / max(rows / 2.4, 1), (x - cols / 2) / max(cols / 2.2, 1)
    body = (ny**2 + nx**2 < 1).astype(float) * (0.6 + 0.2 * nx)
    core = (ny**2 + (nx - 0.2) ** 2 < 0.15) * -0.25
    peak = (1 << bits) - 1
    image = (body + core) * peak + rng.normal(0, noise * peak, shape)
    return np.clip(np.rint(image), 0, peak).astype(np.uint8 if bits <= 8 else np.uint16)


@cache
def mr_small_signed16() -> np.ndarray:
    """pydicom's MR_small.dcm: 64x64, signed 16-bit, shifted to unsigned."""
    values = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm").pixel_array
    return to_unsigned(values, 16, signed=True)[0]


@cache
def emri_12bit() -> np.ndarray:
    """pydicom-data's emri_small.dcm: 10 frames of 64x64, 12 bits stored."""
    return np.ascontiguousarray(pydicom.dcmread(PYDICOM_DATA / "emri_small.dcm").pixel_array)


@cache
def mr2_crop_12bit() -> np.ndarray:
    """A 256x256 centre crop of pydicom-data's MR2_UNCR.dcm (1024x1024 MR, 12 bits stored)."""
    full = pydicom.dcmread(PYDICOM_DATA / "MR2_UNCR.dcm").pixel_array
    return np.ascontiguousarray(full[384:640, 384:640])


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


IMAGES = {
    "mr_small_int16": (mr_small_signed16, 16),
    "emri_frame_12bit": (lambda: emri_12bit()[5], 12),
    "mr2_crop_12bit": (mr2_crop_12bit, 12),
    "phantom_8bit_37x41": (lambda: phantom((37, 41), 8, 0.02, 1), 8),
    "phantom_12bit_516": (lambda: phantom((516, 516), 12, 0.01, 2), 12),
    "phantom_16bit_64x96": (lambda: phantom((64, 96), 16, 0.01, 3), 16),
    "noise_16bit_full_range": (
        lambda: _rng(4).integers(0, 1 << 16, (33, 17)).astype(np.uint16), 16
    ),
    "pixel_1x1_12bit_max": (lambda: np.full((1, 1), 4095, np.uint16), 12),
    "pixels_1x2_16bit": (lambda: np.array([[0, 65535]], np.uint16), 16),
    "random_7x13_12bit": (lambda: _rng(5).integers(0, 4096, (7, 13)).astype(np.uint16), 12),
    "zeros_12bit_32x32": (lambda: np.zeros((32, 32), np.uint16), 12),
    "full_8bit_9x9": (lambda: np.full((9, 9), 255, np.uint8), 8),
    "binary_1bit_16x16": (lambda: _rng(6).integers(0, 2, (16, 16)).astype(np.uint8), 1),
    "random_10bit_20x30": (lambda: _rng(7).integers(0, 1024, (20, 30)).astype(np.uint16), 10),
}

REAL_12BIT = ["emri_frame_12bit", "mr2_crop_12bit"]


def image(name: str) -> tuple[np.ndarray, int]:
    make, bits = IMAGES[name]
    return make(), bits


def test_registry_lists_the_classical_codecs() -> None:
    assert {"jpegls", "j2k", "htj2k", "jxl", "zstd"} <= set(codec_names())


@pytest.mark.parametrize("name", list(IMAGES))
@pytest.mark.parametrize("spec", LOSSLESS_SPECS)
def test_lossless_round_trip_is_bit_exact(spec: str, name: str) -> None:
    codec = get_codec(spec)
    original, bits = image(name)
    stream = codec.encode(original, bits)
    decoded = codec.decode(stream)
    assert codec.mode is CodecMode.LOSSLESS and codec.max_error == 0
    assert decoded.dtype == original.dtype and decoded.shape == original.shape
    np.testing.assert_array_equal(decoded, original)


@pytest.mark.parametrize("spec", LOSSLESS_SPECS + LOSSY_SPECS + BOUNDED_SPECS)
def test_encoding_is_deterministic(spec: str) -> None:
    codec = get_codec(spec)
    original, bits = image("mr2_crop_12bit")
    assert codec.encode(original, bits) == get_codec(spec).encode(original, bits)


@pytest.mark.parametrize("tau", [1, 2, 4])
@pytest.mark.parametrize(
    "name",
    [
        "emri_frame_12bit", "mr2_crop_12bit", "mr_small_int16", "phantom_8bit_37x41",
        "phantom_12bit_516",
    ],
)
def test_near_lossless_jpegls_bounds_every_pixel_by_tau(name: str, tau: int) -> None:
    codec = get_codec(f"jpegls:tau={tau}")
    original, bits = image(name)
    stream = codec.encode(original, bits)
    decoded = codec.decode(stream)
    assert codec.mode is CodecMode.BOUNDED and codec.max_error == tau
    assert decoded.dtype == original.dtype and decoded.shape == original.shape
    error = max_abs_error(original, decoded)
    assert 0 < error <= tau  # within the bound, and really lossy on noisy data
    # |error| <= tau everywhere implies MSE <= tau^2, i.e. PSNR >= 20 log10(peak / tau)
    assert psnr(original, decoded, bits) >= 20 * np.log10(((1 << bits) - 1) / tau)
    assert len(stream) < len(get_codec("jpegls").encode(original, bits))


@pytest.mark.parametrize("bits", [2, 8, 12, 16])
def test_jpegls_codestream_is_bare_and_declares_the_real_bit_depth(bits: int) -> None:
    original = phantom((24, 24), bits, 0.05, 8)
    stream = get_codec("jpegls").encode(original, bits)
    assert stream[:4] == b"\xff\xd8\xff\xf7"  # SOI then SOF55: no SPIFF/APP header
    assert stream[6] == bits  # SOF55 sample precision P


@pytest.mark.parametrize("spec", ["j2k", "j2k:ratio=8"])
@pytest.mark.parametrize("bits", [5, 8, 12, 16])
def test_j2k_codestream_is_bare_and_declares_the_real_bit_depth(spec: str, bits: int) -> None:
    original = phantom((48, 48), bits, 0.05, 9)
    stream = get_codec(spec).encode(original, bits)
    assert stream[:4] == b"\xff\x4f\xff\x51" and stream[-2:] == b"\xff\xd9"
    assert stream[42] & 0x7F == bits - 1  # SIZ Ssiz of component 0: precision - 1, unsigned
    assert b"\xff\x64" not in stream[: stream.index(b"\xff\x90")]  # no COM in the main header


def test_lossy_j2k_small_images_stay_within_budget() -> None:
    for shape in [(7, 13), (20, 40), (31, 64)]:
        original = phantom(shape, 12, 0.02, 10)
        codec = get_codec("j2k:ratio=4")
        stream = codec.encode(original, 12)
        decoded = codec.decode(stream)
        assert decoded.shape == shape and decoded.dtype == np.uint16
        budget = original.size * 12 / 8 / 4
        assert len(stream) <= budget or shape == (7, 13)  # 91 pixels: headers alone exceed 34 B


@pytest.mark.parametrize("ratio", [8, 16, 32])
@pytest.mark.parametrize("name", REAL_12BIT + ["mr_small_int16"])
def test_j2k_ratio_is_honoured_relative_to_stored_bits(name: str, ratio: int) -> None:
    original, bits = image(name)
    stream = get_codec(f"j2k:ratio={ratio}").encode(original, bits)
    achieved = compression_ratio(len(stream), original.size, bits)
    assert abs(achieved / ratio - 1) <= 0.05, f"asked {ratio}, got {achieved:.2f}"


@pytest.mark.parametrize("ratio", [8, 16])
@pytest.mark.parametrize("name", REAL_12BIT)
def test_htj2k_ratio_search_fills_but_never_exceeds_the_budget(name: str, ratio: int) -> None:
    original, bits = image(name)
    stream = get_codec(f"htj2k:ratio={ratio}").encode(original, bits)
    budget = original.size * bits / 8 / ratio
    assert 0.95 * budget <= len(stream) <= budget


@pytest.mark.parametrize("name", REAL_12BIT)
def test_lossy_quality_lands_in_sensible_bands_and_falls_with_rate(name: str) -> None:
    original, bits = image(name)
    # Floors are what a 12-bit MR slice must at least keep at these rates (measured values
    # are 4-10 dB higher); the ceiling says the stream really is lossy.
    floors = {"j2k:ratio=8": 45, "j2k:ratio=16": 40, "j2k:ratio=32": 34, "htj2k:ratio=8": 45,
              "jxl:distance=1": 45, "jxl:distance=3": 40}
    quality = {}
    for spec, floor in floors.items():
        codec = get_codec(spec)
        decoded = codec.decode(codec.encode(original, bits))
        assert codec.mode is CodecMode.LOSSY and codec.max_error is None
        assert decoded.dtype == original.dtype and decoded.shape == original.shape
        quality[spec] = psnr(original, decoded, bits)
        assert floor <= quality[spec] < 90, f"{spec}: {quality[spec]:.1f} dB"
    assert quality["j2k:ratio=8"] > quality["j2k:ratio=16"] > quality["j2k:ratio=32"]
    assert quality["jxl:distance=1"] > quality["jxl:distance=3"]


def step_edges(bits: int) -> np.ndarray:
    """Full-scale stripes and a square: the worst case for ringing above the peak."""
    peak = (1 << bits) - 1
    edges = np.zeros((64, 64), np.uint8 if bits <= 8 else np.uint16)
    edges[:, 32:] = peak
    edges[::7, :] = 0
    edges[20:30, 20:30] = peak
    return edges


@pytest.mark.parametrize("bits", [6, 12])
@pytest.mark.parametrize("spec", LOSSY_SPECS)
def test_lossy_decodes_stay_within_the_bit_depth(spec: str, bits: int) -> None:
    codec = get_codec(spec)
    decoded = codec.decode(codec.encode(step_edges(bits), bits))
    assert decoded.max() <= (1 << bits) - 1


@pytest.mark.parametrize("spec", ["j2k", "j2k:ratio=8", "htj2k", "htj2k:ratio=8"])
def test_j2k_family_streams_decode_with_pylibjpeg_openjpeg(spec: str) -> None:
    # pydicom decodes encapsulated J2K/HTJ2K with pylibjpeg-openjpeg: it must read our streams
    # (including HTJ2K's bit-depth COM note) and agree, up to clipping to the real bit depth.
    # The irreversible 9/7 path is not bit-exact across implementations (OpenJPH vs OpenJPEG
    # round differently), so lossy streams may differ by one grey level.
    codec = get_codec(spec)
    original, bits = image("emri_frame_12bit")
    stream = codec.encode(original, bits)
    theirs = np.minimum(openjpeg.decode(stream), (1 << bits) - 1)
    assert max_abs_error(theirs, codec.decode(stream)) <= (0 if codec.lossless else 1)


def test_jpegls_streams_decode_with_pyjpegls() -> None:
    original, bits = image("emri_frame_12bit")
    stream = get_codec("jpegls:tau=2").encode(original, bits)
    samples, meta = jpeg_ls.decode_buffer(stream)
    assert meta["bits_per_sample"] == 12 and meta["allowed_lossy_error"] == 2
    theirs = np.frombuffer(bytes(samples), "<u2").reshape(original.shape)
    np.testing.assert_array_equal(theirs, get_codec("jpegls").decode(stream))


def test_budget_search_returns_the_largest_stream_that_fits() -> None:
    def encode_at(t: float) -> bytes:  # sizes 10..100 bytes, growing with t
        return b"x" * int(10 + 90 * t)

    assert len(encode_within_budget(encode_at, 50)) in (49, 50)
    assert len(encode_within_budget(encode_at, 1000)) == 100  # everything fits: best quality
    assert len(encode_within_budget(encode_at, 5)) == 10  # nothing fits: the smallest stream


def test_volume_round_trip_uses_one_stream_per_slice() -> None:
    volume = emri_12bit()
    for spec in ["jpegls", "jpegls:tau=2"]:
        codec = get_codec(spec)
        streams = codec.encode_volume(volume, 12)
        assert len(streams) == volume.shape[0]
        decoded = codec.decode_volume(streams)
        assert decoded.shape == volume.shape
        assert max_abs_error(volume, decoded) <= codec.max_error


@pytest.mark.parametrize("spec", LOSSLESS_SPECS + LOSSY_SPECS + BOUNDED_SPECS)
def test_describe_names_the_parameters_and_rebuilds_the_codec(spec: str) -> None:
    described = get_codec(spec).describe()
    assert described["name"] == spec.split(":")[0]
    assert "params" in described and "library" in described
    assert get_codec(described["spec"]).describe() == described


# --- damaged streams --------------------------------------------------------------------


def _damaged_variants(stream: bytes) -> dict[str, bytes]:
    junk = bytes(_rng(11).integers(0, 256, 300, dtype=np.uint8))
    return {
        "empty": b"",
        "two_bytes": stream[:2],
        "half": stream[: len(stream) // 2],
        "last_byte_cut": stream[:-1],
        "header_only": stream[:20],
        "junk": junk,
        "first_byte_flipped": bytes([stream[0] ^ 0xFF]) + stream[1:],
    }


@pytest.mark.parametrize("spec", LOSSLESS_SPECS + LOSSY_SPECS + BOUNDED_SPECS)
def test_damaged_streams_raise_one_line_corrupt_data_errors(
    spec: str, capfd: pytest.CaptureFixture[str]
) -> None:
    codec = get_codec(spec)
    original, bits = image("emri_frame_12bit")
    stream = codec.encode(original, bits)
    for case, data in _damaged_variants(stream).items():
        with pytest.raises(CorruptDataError) as caught:
            codec.decode(data)
        message = str(caught.value)
        assert message.startswith(spec.split(":")[0]) and "\n" not in message, (case, message)
    with pytest.raises(CorruptDataError):
        codec.decode("not bytes")  # type: ignore[arg-type]
    assert "Exception ignored" not in capfd.readouterr().err  # nothing swallowed-and-printed


@pytest.mark.parametrize("spec", ["j2k", "htj2k", "j2k:ratio=8", "htj2k:ratio=8"])
def test_j2k_family_rejects_a_cut_stream_with_its_end_marker_put_back(spec: str) -> None:
    codec = get_codec(spec)
    original, bits = image("emri_frame_12bit")
    stream = codec.encode(original, bits)
    for cut in (len(stream) // 2, len(stream) - 10):
        with pytest.raises(CorruptDataError, match="truncated|damaged"):
            codec.decode(stream[:cut] + b"\xff\xd9")


def test_zstd_detects_damage_anywhere() -> None:
    codec = get_codec("zstd")
    original, bits = image("mr2_crop_12bit")
    stream = codec.encode(original, bits)
    for position in (6, 10, 14, len(stream) // 2, len(stream) - 1):  # shape, CRC, payload
        damaged = bytearray(stream)
        damaged[position] ^= 0x01
        with pytest.raises(CorruptDataError):
            codec.decode(bytes(damaged))
    header = bytearray(stream)
    header[4] = 3  # bytes per sample
    with pytest.raises(CorruptDataError, match="header"):
        codec.decode(bytes(header))
    huge = bytearray(stream)
    struct.pack_into("<II", huge, 6, 1 << 20, 1 << 20)  # would be a 2 TB image
    with pytest.raises(CorruptDataError, match="shape"):
        codec.decode(bytes(huge))


@pytest.mark.parametrize("spec", ["jpegls", "jxl"])
def test_payload_damage_is_caught_by_decoders_that_can(spec: str) -> None:
    codec = get_codec(spec)
    original, bits = image("mr2_crop_12bit")
    stream = codec.encode(original, bits)
    damaged = bytearray(stream)
    damaged[len(stream) // 2] ^= 0xFF
    with pytest.raises(CorruptDataError):
        codec.decode(bytes(damaged))


# --- bad specs and bad input ------------------------------------------------------------


def test_unknown_codec_names_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="unknown codec 'webp'.*jpegls"):
        get_codec("webp")


@pytest.mark.parametrize(
    "spec",
    [
        "jpegls:tau=-1", "jpegls:tau=256", "jpegls:tau=abc", "jpegls:tau=1.5", "jpegls:near=2",
        "j2k:ratio=0.5", "j2k:ratio=fast", "j2k:level=50",
        "htj2k:qstep=2", "htj2k:qstep=0.01,ratio=8", "htj2k:ratio=0",
        "jxl:effort=0", "jxl:effort=11", "jxl:distance=0", "jxl:distance=1,quality=90",
        "jxl:quality=100",
        "zstd:level=0", "zstd:level=23", "jpegls:tau", "jpegls:=2",
    ],
)
def test_bad_parameters_are_one_line_fedcodec_errors(spec: str) -> None:
    with pytest.raises(FedcodecError) as caught:
        get_codec(spec)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("spec", ["jpegls", "j2k", "htj2k", "jxl", "zstd", "j2k:ratio=8"])
def test_bad_images_are_refused_before_encoding(spec: str) -> None:
    codec = get_codec(spec)
    good = np.zeros((8, 8), np.uint16)
    cases = [
        (np.zeros((2, 8, 8), np.uint16), 12, "2-D"),
        (np.zeros((0, 8), np.uint16), 12, "empty"),
        (good.astype(np.int16), 12, "uint16"),
        (good.astype(np.float32), 12, "uint16"),
        (good, 8, "uint8"),  # 8-bit data must travel as uint8
        (np.full((8, 8), 4096, np.uint16), 12, "does not fit"),
        (good, 0, "bit depth"),
        (good, 17, "bit depth"),
    ]
    for array, bits, message in cases:
        with pytest.raises(FedcodecError, match=message):
            codec.encode(array, bits)


def test_jpegls_tau_beyond_what_the_bit_depth_allows_is_refused() -> None:
    with pytest.raises(FedcodecError, match="exceeds"):
        get_codec("jpegls:tau=2").encode(np.zeros((4, 4), np.uint8), 2)  # MAXVAL 3: tau <= 1


def test_neural_family_routes_lossy_hyperprior_and_hybrid_modes() -> None:
    """``neural:mode=lossy`` is the rate-controlled bounded-error coder; the hyperprior moved to
    ``neural:mode=hyperprior`` and its old spec is refused with a one-line pointer."""
    lossy = get_codec("neural:mode=lossy,psnr=50")
    assert lossy.mode is CodecMode.LOSSY and lossy.name == "neural-bounded"
    hyperprior = get_codec("neural:mode=hyperprior,quality=4")
    assert hyperprior.mode is CodecMode.LOSSY and hyperprior.name == "neural-lossy"
    with pytest.raises(FedcodecError, match="neural:mode=hyperprior,quality=4"):
        get_codec("neural:mode=lossy,quality=4")
    with pytest.raises(FedcodecError, match="retired: use neural:mode=progressive"):
        get_codec("neural:mode=hybrid,tau=2")  # retired: a decoder only (archived=1)
    hybrid = get_codec("neural:mode=hybrid,tau=2,archived=1")
    assert hybrid.mode is CodecMode.BOUNDED and hybrid.max_error == 2
