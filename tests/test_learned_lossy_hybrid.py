"""The retired hybrid mode (``neural:mode=hybrid,tau=T``): its spec is a one-line error naming the
replacement; streams and containers written with it still decode (every pixel within tau, the
base-layer preview, bad input). New streams are made with :mod:`.hybrid` itself (ROI coding
keeps using it), as the spec did before retirement.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import require_shared_data
from fedcodec.client.cli import main
from fedcodec.client.compression import decompress_study
from fedcodec.shared.codecs.base import CodecMode, get_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.learned_lossy import hybrid
from fedcodec.shared.learned_lossy.codec import decode_preview
from fedcodec.shared.learned_lossy.weights import HYBRID_WEIGHTS
from fedcodec.shared.metrics import max_abs_error, psnr

OLD_CONTAINER = Path(__file__).parent / "fixtures" / "hybrid-tau2.fcz"
"""pydicom-data's emri_small.dcm, ``fedcodec compress --mode near-lossless --tau 2 --codec
neural:mode=hybrid,tau=2`` before the mode was retired."""
EMRI = Path(pydicom.__file__).parents[1] / "data_store" / "data" / "emri_small.dcm"


def _decoder(tau: int = 2):  # type: ignore[no-untyped-def]
    return get_codec(f"neural-lossy:mode=hybrid,tau={tau},archived=1")


def _encode(image: np.ndarray, bits: int, tau: int = 2, base: float | str = "auto") -> bytes:
    return hybrid.encode_hybrid(image, bits, tau, base, str(HYBRID_WEIGHTS))


def _noisy(rows: int, cols: int, bits: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    top = (1 << bits) - 1
    image = 0.3 * top * (1 + np.sin(x / 7.0) * np.cos(y / 11.0)) + rng.normal(0, top / 100, y.shape)
    return np.clip(np.rint(image), 0, top).astype(np.uint16 if bits > 8 else np.uint8)


def test_retired_spec_names_the_replacement(tmp_path: Path, capsys) -> None:
    for spec in ("neural:mode=hybrid,tau=2", "neural-lossy:mode=hybrid,tau=2"):
        with pytest.raises(FedcodecError, match="neural:mode=progressive,layers=40-2"):
            get_codec(spec)
    study = tmp_path / "study"
    study.mkdir()
    (study / "emri_small.dcm").write_bytes(EMRI.read_bytes())
    code = main(["compress", str(study), "-o", str(tmp_path / "x.fcz"), "--quiet", "--mode",
                 "near-lossless", "--tau", "2", "--codec", "neural:mode=hybrid,tau=2"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "retired" in err
    assert "neural:mode=progressive" in err and not (tmp_path / "x.fcz").exists()
    decoder = _decoder()
    assert decoder.mode is CodecMode.BOUNDED and decoder.max_error == 2
    with pytest.raises(FedcodecError, match="retired"):
        decoder.encode(np.zeros((8, 8), np.uint16), 12)
    for bad in ("neural-lossy:mode=hybrid,archived=1", "neural-lossy:mode=hybrid,tau=0,archived=1",
                "neural-lossy:mode=hybrid,tau=2,quality=3,archived=1",
                "neural-lossy:mode=hybrid,tau=2,base=5,archived=1",
                "neural-lossy:mode=hybrid,tau=2,base=foo,archived=1"):
        with pytest.raises(FedcodecError):
            get_codec(bad)


def test_old_hybrid_container_still_decodes(tmp_path: Path) -> None:
    original = pydicom.dcmread(EMRI).pixel_array
    files = decompress_study(OLD_CONTAINER, tmp_path / "out")
    decoded = np.stack([pydicom.dcmread(f).pixel_array for f in files]).reshape(original.shape)
    assert max_abs_error(original, decoded) <= 2
    assert hashlib.sha256(np.ascontiguousarray(decoded).tobytes()).hexdigest()[:16] == \
        "27ce25ff9a38a5e8"


@pytest.mark.parametrize("tau", [1, 2, 4])
@pytest.mark.parametrize("shape", [(5, 7), (61, 47), (96, 128)])
def test_every_pixel_within_tau(tau: int, shape: tuple[int, int]) -> None:
    image = _noisy(*shape, seed=tau)
    out = _decoder(tau).decode(_encode(image, 12, tau))
    assert out.shape == shape and out.dtype == np.uint16
    assert max_abs_error(image, out) <= tau


def test_uint8_and_16_bit() -> None:
    for bits in (8, 16):
        image = _noisy(40, 52, bits=bits)
        out = _decoder().decode(_encode(image, bits))
        assert out.dtype == image.dtype and max_abs_error(image, out) <= 2


def test_preview_is_the_base_layer() -> None:
    image = _noisy(64, 72)
    codec = _decoder()
    data = _encode(image, 12, base=40)
    preview = decode_preview(data)
    full = codec.decode(data)
    assert preview.shape == image.shape
    assert psnr(image, preview, 12) < psnr(image, full, 12)
    assert max_abs_error(image, full) <= 2
    bare = _encode(image, 12, base="none")
    assert decode_preview(bare) is None
    assert max_abs_error(image, codec.decode(bare)) <= 2


def test_real_slice_within_tau_and_below_raw(shared_data) -> None:
    from fedcodec.shared.dicom.read import read_series
    from fedcodec.shared.pixels import to_unsigned

    folder = require_shared_data("dicom", "siemens", "siemens_c")
    series, _ = read_series(folder)
    s = series[0]
    image, _ = to_unsigned(s.volume[0], s.bits_stored, s.signed)
    data = _encode(np.ascontiguousarray(image), s.bits_stored)
    assert max_abs_error(image, _decoder().decode(data)) <= 2
    assert 8 * len(data) / image.size < s.bits_stored


def test_corrupt_hybrid_streams_raise() -> None:
    codec = _decoder()
    data = _encode(_noisy(48, 48), 12)
    flipped = bytearray(data)
    flipped[40] ^= 0x01
    for stream in (data[:-3], data[:20], bytes(flipped), b"FLL1" + bytes(60)):
        with pytest.raises(CorruptDataError):
            codec.decode(stream)
