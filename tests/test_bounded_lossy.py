"""``neural:mode=lossy`` (rate-controlled bounded error), ``neural:mode=progressive`` (layers),
and old containers whose ``neural:mode=lossy`` meant the hyperprior.

Data: pydicom-data's 10-frame 64x64 12-bit MR (installed with fedcodec, no shared data needed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from fedcodec.client import compression
from fedcodec.client.cli import main
from fedcodec.client.compression import compress_study, decompress_study
from fedcodec.shared import metrics
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.container import read_container
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.neural.bounded_lossy import stream_tau
from fedcodec.shared.sources import read_stacks

PYDICOM_DATA = Path(pydicom.__file__).parents[1] / "data_store" / "data"
EMRI = PYDICOM_DATA / "emri_small.dcm"


@pytest.fixture(scope="module")
def volume() -> tuple[np.ndarray, int]:
    (stack,), _ = read_stacks(EMRI)
    return np.ascontiguousarray(stack.codec_volume()[0][:4]), stack.bits  # 4 slices: fast


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(EMRI, folder / "emri_small.dcm")
    return folder


def _decode_checked(codec, streams, volume):  # type: ignore[no-untyped-def]
    decoded = codec.decode_volume(streams)
    for image, data, out in zip(volume, streams, decoded, strict=True):
        bound = codec.guaranteed_error(data)
        assert bound == stream_tau(data) and metrics.max_abs_error(image, out) <= bound
    return decoded


@pytest.mark.parametrize("psnr", [45.0, 60.0])
def test_psnr_target_met_on_every_slice(volume, psnr: float) -> None:
    image, bits = volume
    codec = get_codec(f"neural:mode=lossy,psnr={psnr:g}")
    streams = codec.encode_volume(image, bits)
    decoded = _decode_checked(codec, streams, image)
    values = [metrics.psnr(a, b, bits) for a, b in zip(image, decoded, strict=True)]
    assert min(values) >= psnr
    assert len(set(codec.last_taus)) >= 1 and max(codec.last_taus) > 0
    # the largest bound that met the target: one more would not (checked on slice 0 alone)
    first = get_codec(f"neural:mode=lossy,psnr={psnr:g}")
    tau = first.last_taus[0] if first.encode_volume(image[:1], bits) else None
    looser = get_codec(f"neural:tau={tau + 1},centroid=1,coarse=0.7")  # the lossy defaults
    assert metrics.psnr(image[0], looser.decode(looser.encode(image[0], bits)), bits) < psnr


@pytest.mark.parametrize("spec, limit", [("bpp=1.5", 1.5), ("ratio=8", 16 / 8)])
def test_rate_targets_hold_for_the_series(volume, spec: str, limit: float) -> None:
    image, bits = volume
    codec = get_codec(f"neural:mode=lossy,{spec},allocate=series")  # one tau: the smallest
    streams = codec.encode_volume(image, bits)
    _decode_checked(codec, streams, image)
    bpp = 8 * sum(map(len, streams)) / image.size
    assert bpp <= limit
    (tau,) = set(codec.last_taus)
    smaller = get_codec(f"neural:tau={tau - 1},centroid=1,coarse=0.7" if tau > 1 else "neural")
    assert 8 * sum(map(len, smaller.encode_volume(image, bits))) / image.size > limit


def test_max_error_target_and_bad_targets(volume) -> None:
    image, bits = volume
    codec = get_codec("neural:mode=lossy,max_error=6")
    streams = codec.encode_volume(image, bits)
    _decode_checked(codec, streams, image)
    assert {stream_tau(s) for s in streams} == {6}
    for bad, text in [("neural:mode=lossy", "exactly one target"),
                      ("neural:mode=lossy,psnr=50,bpp=1", "exactly one target"),
                      ("neural:mode=lossy,psnr=5", "psnr target"),
                      ("neural:mode=lossy,ratio=1", "ratio target"),
                      ("neural:mode=lossy,max_error=1.5", "max_error target"),
                      ("neural:mode=lossy,quality=3", "neural:mode=hyperprior,quality=3")]:
        with pytest.raises(FedcodecError, match=text):
            get_codec(bad)


def test_compress_psnr_records_the_bound_in_container_and_dicom(study: Path, tmp_path: Path,
                                                               capsys) -> None:
    fcz = tmp_path / "s.fcz"
    assert main(["compress", str(study), "-o", str(fcz), "--mode", "lossy", "--psnr", "55",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "codec neural:mode=lossy,psnr=55 (lossy, verified max error" in out
    container = read_container(fcz)
    bound = container.header.codec.describe["guaranteed_max_error"]
    assert bound == max(stream_tau(s) for s in container.pixel_streams(0))
    assert f"<= bound {bound}, worst slice PSNR " in out
    worst = float(out.split("worst slice PSNR ")[1].split(" dB")[0])
    mean = float(out.split(" dB, mean ")[1].split(" dB at peak")[0])
    assert 55 <= worst <= mean
    assert main(["inspect", str(fcz)]) == 0
    assert f"(lossy, every pixel within {bound})" in capsys.readouterr().out
    files = decompress_study(fcz, tmp_path / "out")
    ds = pydicom.dcmread(files[0])
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "FEDCODEC_NEURAL"
    assert float(ds.LossyImageCompressionRatio) > 1
    assert f"every pixel within {bound} of the original stored value" in ds.DerivationDescription
    original = pydicom.dcmread(study / "emri_small.dcm").pixel_array.astype(np.int32)
    decoded = np.stack([pydicom.dcmread(f).pixel_array for f in files]).astype(np.int32)
    assert np.abs(decoded.reshape(original.shape) - original).max() <= bound


@pytest.mark.parametrize("argv, text", [
    (["--mode", "near-lossless", "--tau", "2", "--psnr", "50"], "apply to --mode lossy"),
    (["--psnr", "50", "--codec", "j2k:ratio=8"], "drop --profile, --codec and --quality"),
    (["--bpp", "-1"], "bpp target"),
])
def test_compress_target_errors_are_one_line(study: Path, tmp_path: Path, capsys, argv,
                                             text: str) -> None:
    code = main(["compress", str(study), "-o", str(tmp_path / "x.fcz"), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert text in err
    assert not (tmp_path / "x.fcz").exists()


def test_each_progressive_layer_holds_its_bound(volume) -> None:
    image, bits = volume
    codec = get_codec("neural:mode=progressive,layers=16-4-0")
    streams = codec.encode_volume(image, bits)
    n = image.shape[0]
    assert len(streams) == 3 * n
    for layer, bound in enumerate((16, 4, 0), start=1):
        partial = codec.decode_layers(streams[: layer * n], layer, partial=True)
        assert np.array_equal(partial, codec.decode_layers(streams, layer))
        assert np.abs(partial.astype(np.int32) - image).max() <= bound
        assert {stream_tau(s) for s in streams[(layer - 1) * n: layer * n]} == {bound}
    assert np.array_equal(codec.decode_volume(streams), image)
    with pytest.raises(FedcodecError, match="layers must be"):
        get_codec("neural:mode=progressive,layers=4-16")


def test_decompress_layer_writes_a_marked_preview(study: Path, tmp_path: Path, capsys) -> None:
    fcz = tmp_path / "p.fcz"
    compress_study(study, fcz, mode="lossless", codec="neural:mode=progressive,layers=16-0",
                   progress=False)
    assert main(["decompress", str(fcz), "-o", str(tmp_path / "preview"), "--layer", "1",
                 "--quiet"]) == 0
    preview = [pydicom.dcmread(p) for p in sorted((tmp_path / "preview").rglob("*.dcm"))]
    assert preview[0].LossyImageCompression == "01"
    assert "every pixel within 16 " in preview[0].DerivationDescription
    full = decompress_study(fcz, tmp_path / "full", layer=2)
    assert pydicom.dcmread(full[0]).get("LossyImageCompression", "00") == "00"
    code = main(["decompress", str(fcz), "-o", str(tmp_path / "x"), "--layer", "3", "--quiet"])
    assert code != 0 and "--layer must be 1..2" in capsys.readouterr().err


def test_old_hyperprior_container_still_decodes(study: Path, tmp_path: Path,
                                                monkeypatch) -> None:
    """Before the rename, ``neural:mode=lossy,quality=Q`` built the hyperprior and the container
    recorded that spec; reproduce such a container and decode it with today's code."""
    old_spec = "neural:mode=lossy,quality=2"
    real = compression.get_codec
    monkeypatch.setattr(compression, "get_codec", lambda spec: real(
        "neural:mode=hyperprior,quality=2" if spec == old_spec else spec))
    fcz = tmp_path / "old.fcz"
    compress_study(study, fcz, mode="lossy", codec=old_spec, progress=False)
    monkeypatch.setattr(compression, "get_codec", real)
    header = read_container(fcz).header
    assert header.codec.spec == old_spec and header.codec.describe["name"] == "neural-lossy"
    files = decompress_study(fcz, tmp_path / "out")
    expected = real("neural-lossy:quality=2").decode_volume(read_container(fcz).pixel_streams(0))
    decoded = np.stack([pydicom.dcmread(f).pixel_array for f in files])
    assert np.array_equal(decoded.reshape(expected.shape), expected)


def test_centroid_reconstruction_keeps_the_bound_and_old_streams_decode(volume) -> None:
    """``centroid=1`` (default of neural:mode=lossy) writes magic 0xA6, moves reconstructions
    inside the bin and still keeps every pixel within tau; centre-reconstructed streams (0xA1)
    decode as before."""
    image, bits = volume
    for tau in (3, 40):
        # the learned coder alone (no classical fallback, no adaptation): magic bytes compared
        centre = get_codec(f"neural:tau={tau},fallback=0,adapt=0")
        moved = get_codec(f"neural:tau={tau},centroid=1,fallback=0,adapt=0")
        a, b = centre.encode_volume(image, bits), moved.encode_volume(image, bits)
        assert a[1][0] == 0xA1 and b[1][0] == 0xA6
        out_a, out_b = centre.decode_volume(a), moved.decode_volume(b)
        assert np.abs(out_b.astype(np.int64) - image).max() <= tau
        assert not np.array_equal(out_a, out_b)
        assert np.array_equal(moved.decode_volume(a), out_a)  # the stream says how it was coded
