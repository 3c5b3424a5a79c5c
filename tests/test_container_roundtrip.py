"""compress_study -> .fcz -> decompress_study, through real DICOM files.

Lossless must give back every stored value and every non-pixel header with the original UIDs;
near-lossless must stay within tau on every pixel and mark the output lossy with new UIDs; a codec
that breaks its promise must fail before anything is written; a decompress that fails half-way
must leave nothing behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import require_shared_data

from fedcodec.client import compression
from fedcodec.client.compression import (
    compress_study,
    decompress_study,
    default_codec_spec,
    inspect_container,
    quality_to_ratio,
)
from fedcodec.shared.codecs import Codec, CodecMode, get_codec
from fedcodec.shared.container import CodecInfo, CodedStudy, read_container, write_container
from fedcodec.shared.dicom import read_series
from fedcodec.shared.errors import CorruptDataError, FedcodecError

PYDICOM_DATA = Path(pydicom.__file__).parents[1] / "data_store" / "data"
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
FILE_META_REWRITTEN = {
    0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013, 0x00020016
}
"""File meta a writer sets: group length, version, SOP class/instance (copied from the dataset;
edge12's source meta disagrees with its own SOPInstanceUID), transfer syntax, implementation."""
LOSSY_REWRITTEN = {
    0x00080008,  # ImageType -> DERIVED
    0x00080018,  # SOPInstanceUID
    0x0020000E,  # SeriesInstanceUID
    0x00082111,  # DerivationDescription
    0x00089215,  # DerivationCodeSequence
    0x00082112,  # SourceImageSequence
    0x00282110,  # LossyImageCompression
    0x00282112,  # LossyImageCompressionRatio
    0x00282114,  # LossyImageCompressionMethod
    0x00020003,  # MediaStorageSOPInstanceUID
}


def _by_sop(files: list[Path]) -> dict[str, pydicom.Dataset]:
    datasets = (pydicom.dcmread(f) for f in files)
    return {str(ds.SOPInstanceUID): ds for ds in datasets}


def _differences(original: pydicom.Dataset, output: pydicom.Dataset, allowed: set[int]) -> list:
    """Tags whose element differs (VR or value), ignoring pixel data and ``allowed``."""
    diffs = []
    for dataset_a, dataset_b in ((original, output), (original.file_meta, output.file_meta)):
        tags = {int(t) for t in dataset_a.keys()} | {int(t) for t in dataset_b.keys()}
        for tag in sorted(tags - PIXEL_TAGS - FILE_META_REWRITTEN - allowed):
            a, b = dataset_a.get(tag), dataset_b.get(tag)
            if a is None or b is None or a.value != b.value:
                diffs.append(f"{pydicom.tag.Tag(tag)} {a!r} != {b!r}")
    return diffs


def _compare_lossless(source: Path, tmp_path: Path, codec: str | None = None) -> None:
    fcz = tmp_path / "study.fcz"
    report = compress_study(source, fcz, mode="lossless", codec=codec, progress=False)
    assert report.max_error == 0 and report.container_bytes == fcz.stat().st_size
    written = decompress_study(fcz, tmp_path / "out")
    assert written and all(p.is_file() and (tmp_path / "out") in p.parents for p in written)

    before, _ = read_series(source)
    after, _ = read_series(tmp_path / "out")
    assert [s.series_uid for s in after] == [s.series_uid for s in before]  # UIDs kept
    for a, b in zip(before, after, strict=True):
        assert b.volume.dtype == a.volume.dtype
        np.testing.assert_array_equal(b.volume, a.volume)  # bit-exact stored values

    originals = _by_sop([p for s in before for p in s.source_files])
    outputs = _by_sop(written)
    assert set(outputs) == set(originals)  # SOP Instance UIDs kept, one output per source file
    for sop, original in originals.items():
        assert _differences(original, outputs[sop], set()) == [], sop
        assert outputs[sop].file_meta.MediaStorageSOPInstanceUID == sop
        assert "LossyImageCompression" not in outputs[sop] or (
            outputs[sop].LossyImageCompression == original.get("LossyImageCompression")
        )


def test_lossless_round_trip_ge_dwi(tmp_path: Path) -> None:
    _compare_lossless(require_shared_data("dicom", "ge", "In", "01_Ax_DWI_TENSOR_R2"), tmp_path)


def test_lossless_round_trip_signed_and_garbage_bits(tmp_path: Path) -> None:
    """edge12: signed 12-bit, and unsigned with junk in the unused high bits, as one study."""
    _compare_lossless(require_shared_data("dicom", "edge12", "In"), tmp_path, codec="jpegls")


@pytest.mark.parametrize(
    "name",
    ["emri_small_big_endian.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "emri_small_RLE.dcm"],
)
def test_lossless_round_trip_pydicom_data(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PYDICOM_DATA / name, folder / name)
    _compare_lossless(folder, tmp_path, codec="htj2k")


def test_near_lossless_stays_within_tau_and_is_marked(tmp_path: Path) -> None:
    source = require_shared_data("dicom", "ge", "In", "01_Ax_DWI_TENSOR_R2")
    fcz = tmp_path / "n.fcz"
    report = compress_study(source, fcz, mode="near-lossless", tau=2, progress=False)
    assert report.codec_spec == "neural:tau=2" and report.max_error == 2
    written = decompress_study(fcz, tmp_path / "out")

    before, _ = read_series(source)
    after, _ = read_series(tmp_path / "out")
    error = np.abs(after[0].volume.astype(np.int32) - before[0].volume.astype(np.int32))
    assert error.max() == 2  # within tau everywhere, and really lossy

    originals = {int(ds.InstanceNumber): ds for ds in _by_sop(before[0].source_files).values()}
    container = read_container(fcz)
    ratio = container.series[0].info.raw_pixel_bytes / container.pixel_stream_bytes(0)
    outputs = [pydicom.dcmread(p) for p in written]
    assert len(outputs) == len(originals)
    for out in outputs:
        original = originals[int(out.InstanceNumber)]
        assert out.LossyImageCompression == "01"
        assert out.LossyImageCompressionMethod == "FEDCODEC_NEURAL"
        assert float(out.LossyImageCompressionRatio) == pytest.approx(ratio, rel=1e-3)
        assert out.SOPInstanceUID != original.SOPInstanceUID
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        assert out.SourceImageSequence[-1].ReferencedSOPInstanceUID == original.SOPInstanceUID
        assert _differences(original, out, LOSSY_REWRITTEN) == []


def test_lossy_mode_uses_the_quality_mapping(tmp_path: Path) -> None:
    source = PYDICOM_DATA / "emri_small.dcm"
    report = compress_study(source, tmp_path / "l.fcz", mode="lossy", quality=50, progress=False)
    assert report.codec_spec == "neural:mode=lossy,ratio=20.3"
    assert report.max_error > 0 and report.series[0].psnr_db is not None
    assert report.pixel_ratio >= 20.3 and report.max_error <= report.series[0].bound
    assert read_container(tmp_path / "l.fcz").header.quality == 50
    out = pydicom.dcmread(decompress_study(tmp_path / "l.fcz", tmp_path / "out")[0])
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == "FEDCODEC_NEURAL"
    assert f"every pixel within {report.series[0].bound} " in out.DerivationDescription


def test_default_codec_specs() -> None:
    assert default_codec_spec("lossless") == "neural"
    assert default_codec_spec("near-lossless", tau=3) == "neural:tau=3"
    assert default_codec_spec("lossy") == "neural:mode=lossy,ratio=9"  # default quality 75
    assert default_codec_spec("lossy", quality=100) == "neural:mode=lossy,ratio=4"
    assert default_codec_spec("lossy", quality=1) == "neural:mode=lossy,ratio=100"
    ratios = [quality_to_ratio(q) for q in range(1, 101)]
    assert all(a > b for a, b in zip(ratios, ratios[1:], strict=False))  # monotone
    for spec in (default_codec_spec("lossless"), default_codec_spec("near-lossless", tau=3),
                 default_codec_spec("lossy")):
        get_codec(spec)  # every default names a registered codec


class _LyingCodec(Codec):
    """Claims to be lossless but drops the lowest bit: verification must catch it."""

    name = "liar"

    def __init__(self) -> None:
        self.inner = get_codec("zstd")

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        return self.inner.encode(image & ~np.asarray(1, image.dtype), bits)

    def decode(self, data: bytes) -> np.ndarray:
        return self.inner.decode(data)


def test_broken_promise_fails_before_writing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(compression, "get_codec", lambda spec: _LyingCodec())
    fcz = tmp_path / "x.fcz"
    with pytest.raises(FedcodecError, match="failed verification .* max error 1 > 0 .*nothing"):
        compress_study(PYDICOM_DATA / "emri_small.dcm", fcz, mode="lossless", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_failed_decompress_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    source = require_shared_data("dicom", "edge12", "In")  # three series
    fcz = tmp_path / "s.fcz"
    compress_study(source, fcz, mode="lossless", codec="zstd", progress=False)
    real = compression.write_series
    calls = []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(compression, "write_series", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        decompress_study(fcz, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.fcz"]


def test_decompress_checks_streams_and_model(tmp_path: Path) -> None:
    fcz = tmp_path / "s.fcz"
    source = PYDICOM_DATA / "emri_small.dcm"
    compress_study(source, fcz, mode="lossless", codec="zstd", progress=False)
    container = read_container(fcz)
    data = bytearray(fcz.read_bytes())
    data[container.stream_offset(container.series[0].first_stream + 4)] ^= 0x01
    (tmp_path / "bad.fcz").write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match="^stream 5 checksum mismatch$"):
        decompress_study(tmp_path / "bad.fcz", tmp_path / "out")
    assert not (tmp_path / "out").exists()

    # a container that names a model other than the codec's own is refused
    study = CodedStudy(
        codec=CodecInfo("zstd", {}, "f" * 64), mode="lossless", tau=0, quality=None, series=[]
    )
    write_container(tmp_path / "model.fcz", study)
    with pytest.raises(FedcodecError, match="coded with model ffffffffffffffff"):
        decompress_study(tmp_path / "model.fcz", tmp_path / "out")


def test_inspect_matches_the_report(tmp_path: Path) -> None:
    fcz = tmp_path / "s.fcz"
    report = compress_study(PYDICOM_DATA / "emri_small.dcm", fcz, mode="lossless", progress=False)
    summary = inspect_container(fcz, verify=True)
    assert summary.size == report.container_bytes
    assert summary.codec_spec == report.codec_spec == "neural"
    (series,) = summary.series
    assert series["stream_bytes"] == report.stream_bytes
    assert series["raw_bytes"] == report.raw_bytes == 10 * 64 * 64 * 2
    assert series["bpp"] == pytest.approx(report.bpp)
    assert series["ratio"] == pytest.approx(report.pixel_ratio)


def test_codec_that_does_not_fit_the_mode(tmp_path: Path) -> None:
    study = PYDICOM_DATA / "emri_small.dcm"
    with pytest.raises(FedcodecError, match="lossless mode needs a lossless codec"):
        compress_study(study, tmp_path / "x.fcz", mode="lossless", codec="jpegls:tau=1")
    with pytest.raises(FedcodecError, match="is lossy; near-lossless mode needs a bounded codec"):
        compress_study(study, tmp_path / "x.fcz", mode="near-lossless", tau=2, codec="j2k:ratio=8")
    report = compress_study(
        study, tmp_path / "x.fcz", mode="near-lossless", tau=2, codec="zstd", progress=False
    )
    assert report.max_error == 0  # a lossless codec keeps any bound
    assert get_codec("zstd").mode is CodecMode.LOSSLESS
