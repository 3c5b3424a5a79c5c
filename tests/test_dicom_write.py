"""write_series: every transfer syntax round-trips, lossy output is marked as PS3.3 asks.

Lossless output must read back (with pydicom and with read_series) to exactly the stored values
that were written, keep every UID and every other header element; near-lossless output must stay
within tau; lossy output must carry Lossy Image Compression 01, method, ratio, derivation and new
UIDs. Real data from every vendor family are used where the writer's behaviour could differ
(signed, 12-bit with garbage bits, mosaics, a JPEG-lossless source, big headers).
"""

from __future__ import annotations

import math
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from conftest import require_shared_data
from pydicom.encaps import generate_frames

from fedcodec.shared.dicom import LossyInfo, Series, read_series, write_series
from fedcodec.shared.dicom import write as write_module
from fedcodec.shared.errors import FedcodecError, UnknownNameError

SITE = Path(pydicom.__file__).resolve().parents[1]  # the site-packages pydicom is installed in
PYDICOM_FILES = SITE / "pydicom/data/test_files"
PYDICOM_DATA = SITE / "data_store/data"

LOSSLESS = {
    "explicit": "1.2.840.10008.1.2.1",
    "implicit": "1.2.840.10008.1.2",
    "deflate": "1.2.840.10008.1.2.1.99",
    "rle": "1.2.840.10008.1.2.5",
    "jpegls": "1.2.840.10008.1.2.4.80",
    "j2k": "1.2.840.10008.1.2.4.90",
    "htj2k": "1.2.840.10008.1.2.4.201",
}
PIXEL_MODULE = {"BitsStored", "HighBit", "PixelData"}
SHARED_FOLDERS = {
    "edge12": ("edge12",),
    "siemens_c mosaic": ("siemens", "siemens_c", "In", "20180918Si", "mr_0003"),
    "siemens_a jpeg-lossless mosaic": (
        "siemens", "siemens_a", "In", "Orientation", "axmb", "AxAsc36mb2a"
    ),
    "siemens_b t1": ("siemens", "siemens_b", "In", "HFS", "3_t1_fl2d_sag"),
    "ge signed dwi": ("ge", "In", "01_Ax_DWI_TENSOR_R2"),
    "philips fmri": ("philips", "In", "Magdeburg_2014"),
}


def _stored(pattern: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    values = np.asarray(pattern).astype(np.int64) & 0xFFFF & ((1 << bits_stored) - 1)
    if signed:
        values = np.where(values >= 1 << (bits_stored - 1), values - (1 << bits_stored), values)
    return values


@pytest.fixture(scope="module")
def shared_series() -> dict[str, Series]:
    found = {}
    for label, parts in SHARED_FOLDERS.items():
        series, _ = read_series(require_shared_data("dicom", *parts))
        for s in series:
            found[f"{label} {s.part}" if s.part else label] = s
    return found


def _reread(paths: list[Path]) -> Series:
    [series], skipped = read_series(paths[0].parent)
    assert not skipped
    return series


def _assert_same_elements(source: pydicom.Dataset, written: pydicom.Dataset, where: str) -> None:
    for element in source:
        if element.keyword in PIXEL_MODULE:
            continue
        assert element.tag in written, f"{where} lost {element.tag} {element.keyword}"
        copy = written[element.tag]
        if copy.VR != element.VR and element.tag.is_private:
            continue  # implicit VR: private elements come back as UN or their dictionary VR
        if element.VR == "SQ":
            assert len(copy.value) == len(element.value), f"{where} changed {element.keyword}"
            for a, b in zip(element.value, copy.value, strict=True):
                _assert_same_elements(a, b, f"{where}/{element.keyword}")
        else:
            assert copy.value == element.value, f"{where} changed {element.tag} {element.keyword}"


def _check_written_files(
    series: Series, paths: list[Path], expected: np.ndarray, *, headers: bool = True
) -> list[pydicom.Dataset]:
    """Each written file decodes with pydicom to the expected slices (frames, or mosaic tiles)
    and, with ``headers``, keeps every element of its source header."""
    slices: dict[int, list[tuple[int, int]]] = {}
    for index, (d, frame) in enumerate(series.slice_sources):
        slices.setdefault(d, []).append((index, frame))
    written = []
    for dataset_index, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
        values = _stored(pixels, int(ds.BitsStored), ds.PixelRepresentation == 1)
        tiles = series.mosaic_tiles[dataset_index]
        kept = sorted(frame for _, frame in slices[dataset_index])
        for index, frame in slices[dataset_index]:
            if tiles:
                grid = math.ceil(math.sqrt(tiles))
                th, tw = ds.Rows // grid, ds.Columns // grid
                r, c = divmod(frame, grid)
                image = values[0, r * th : (r + 1) * th, c * tw : (c + 1) * tw]
            else:
                image = values[kept.index(frame)]
            message = f"{path.name} frame {frame}"
            np.testing.assert_array_equal(image, expected[index], err_msg=message)
        if headers:
            _assert_same_elements(series.datasets[dataset_index], ds, path.name)
        written.append(ds)
    return written


@pytest.mark.parametrize("syntax", list(LOSSLESS))
def test_lossless_round_trip_on_real_data(
    shared_series: dict[str, Series], syntax: str, tmp_path: Path
) -> None:
    for label, series in shared_series.items():
        out = tmp_path / label.replace(" ", "_")
        paths = write_series(series, out, transfer_syntax=syntax)
        assert [p.name for p in paths] == [p.name for p in series.source_files]
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths), "stray files"
        back = _reread(paths)
        np.testing.assert_array_equal(back.volume, series.volume, err_msg=f"{label} via {syntax}")
        assert back.volume.dtype == series.volume.dtype
        assert back.slice_sources == series.slice_sources
        assert back.mosaic_tiles == series.mosaic_tiles
        for ds in _check_written_files(series, paths, series.volume):
            assert ds.file_meta.TransferSyntaxUID == LOSSLESS[syntax]
            assert str(ds.get("LossyImageCompression", "00")) != "01"


def test_mosaics_are_reassembled_exactly(shared_series: dict[str, Series], tmp_path: Path) -> None:
    """The whole written mosaic, empty grid tiles included, equals the source mosaic."""
    checked = 0
    for label, series in shared_series.items():
        if not any(series.mosaic_tiles):
            continue
        paths = write_series(series, tmp_path / label.replace(" ", "_"))
        for source, path in zip(series.source_files, paths, strict=True):
            src = pydicom.dcmread(source)
            want = _stored(src.pixel_array, int(src.BitsStored), src.PixelRepresentation == 1)
            got = np.frombuffer(pydicom.dcmread(path).PixelData, "<i2" if series.signed else "<u2")
            np.testing.assert_array_equal(got.reshape(want.shape), want)
            checked += 1
    assert checked == 3 + 2 + 2  # edge12 files, siemens_c and siemens_a mosaics


@pytest.mark.parametrize(
    "source",
    [
        PYDICOM_FILES / "MR_small_bigendian.dcm",
        PYDICOM_DATA / "emri_small_big_endian.dcm",
        PYDICOM_FILES / "MR_small_implicit.dcm",
    ],
)
@pytest.mark.parametrize("syntax", list(LOSSLESS))
def test_lossless_round_trip_from_other_encodings(
    source: Path, syntax: str, tmp_path: Path
) -> None:
    [series], _ = read_series(source)
    paths = write_series(series, tmp_path, transfer_syntax=syntax)
    assert len(paths) == 1  # multi-frame stays one multi-frame file
    back = _reread(paths)
    np.testing.assert_array_equal(back.volume, series.volume)
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPInstanceUID == series.datasets[0].SOPInstanceUID
    assert ds.SeriesInstanceUID == series.series_uid
    assert int(ds.get("NumberOfFrames") or 1) == series.shape[0]
    assert ds.PatientName == series.datasets[0].PatientName
    decoded = _stored(ds.pixel_array, int(ds.BitsStored), series.signed)
    np.testing.assert_array_equal(decoded.reshape(series.shape), series.volume)


@pytest.mark.parametrize("tau", [1, 2, 3])
def test_jpegls_near_lossless_stays_within_tau(
    shared_series: dict[str, Series], tau: int, tmp_path: Path
) -> None:
    for label in ("edge12 1", "edge12 2", "edge12 3", "ge signed dwi"):
        series = shared_series[label]
        out = tmp_path / label.replace(" ", "_")
        paths = write_series(series, out, transfer_syntax=f"jpegls:tau={tau}")
        back = _reread(paths)
        error = np.abs(back.volume.astype(np.int64) - series.volume.astype(np.int64)).max()
        assert error <= tau, f"{label}: max error {error} > tau {tau}"
        assert back.signed == series.signed
        ds = pydicom.dcmread(paths[0])
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.81"
        assert ds.LossyImageCompressionMethod == "ISO_14495_1"
        decoded = _stored(ds.pixel_array, int(ds.BitsStored), series.signed)
        assert decoded.shape == (ds.Rows, ds.Columns)


def test_signed_j2k_codestreams_are_signed_and_exact(
    shared_series: dict[str, Series], tmp_path: Path
) -> None:
    """J2K/HTJ2K frames of signed data are signed codestreams; imagecodecs reads them exactly."""
    series = shared_series["edge12 3"]
    assert series.signed
    for syntax, decode in (("j2k", imagecodecs.jpeg2k_decode), ("htj2k", imagecodecs.htj2k_decode)):
        [path] = write_series(series, tmp_path / syntax, transfer_syntax=syntax)
        ds = pydicom.dcmread(path)
        [stream] = list(generate_frames(ds.PixelData, number_of_frames=1))
        mosaic = decode(stream)
        assert mosaic.dtype == np.int16
        grid = math.ceil(math.sqrt(series.mosaic_tiles[0]))
        for index, (_, tile) in enumerate(series.slice_sources):
            r, c = divmod(tile, grid)
            tile_image = mosaic[r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64]
            np.testing.assert_array_equal(tile_image, series.volume[index])


@pytest.mark.parametrize(
    ("syntax", "uid", "method"),
    [
        ("jpegls:tau=2", "1.2.840.10008.1.2.4.81", "ISO_14495_1"),
        ("j2k:ratio=12", "1.2.840.10008.1.2.4.91", "ISO_15444_1"),
        ("htj2k:ratio=12", "1.2.840.10008.1.2.4.203", "ISO_15444_15"),
    ],
)
def test_lossy_output_is_marked_and_gets_new_uids(
    shared_series: dict[str, Series], syntax: str, uid: str, method: str, tmp_path: Path
) -> None:
    series = shared_series["siemens_c mosaic"]
    paths = write_series(series, tmp_path, transfer_syntax=syntax)
    written = [pydicom.dcmread(p) for p in paths]
    sources = series.datasets
    series_uids = {ds.SeriesInstanceUID for ds in written}
    assert len(series_uids) == 1 and series.series_uid not in series_uids
    assert len({ds.SOPInstanceUID for ds in written}) == len(written)
    for ds, source in zip(written, sources, strict=True):
        assert ds.file_meta.TransferSyntaxUID == uid
        assert ds.SOPInstanceUID != source.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.LossyImageCompression == "01"
        assert ds.LossyImageCompressionMethod == method
        ratio = float(ds.LossyImageCompressionRatio)
        encoded = sum(len(f) for f in generate_frames(ds.PixelData, number_of_frames=1))
        assert ratio == pytest.approx(ds.Rows * ds.Columns * 2 / encoded, rel=0.01)
        assert ratio > 2
        assert ds.ImageType[0] == "DERIVED"
        assert method in ds.DerivationDescription
        assert ds.DerivationCodeSequence[0].CodeValue == "113040"
        assert ds.SourceImageSequence[-1].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert ds.pixel_array.shape == (216, 216)
    back = _reread(paths)
    assert back.shape == series.shape
    error = np.abs(back.volume.astype(np.int64) - series.volume.astype(np.int64))
    assert error.mean() < 0.05 * series.volume.max()
    # the source headers were not touched by writing
    assert all("LossyImageCompressionMethod" not in d for d in series.datasets)
    assert all(d.ImageType[0] == "ORIGINAL" for d in series.datasets)


def test_lossy_steps_accumulate(shared_series: dict[str, Series], tmp_path: Path) -> None:
    series = shared_series["edge12 1"]
    first = write_series(series, tmp_path / "first", transfer_syntax="jpegls:tau=2")
    once = _reread(first)
    second = write_series(once, tmp_path / "second", transfer_syntax="j2k:ratio=10")
    ds = pydicom.dcmread(second[0])
    assert list(ds.LossyImageCompressionMethod) == ["ISO_14495_1", "ISO_15444_1"]
    assert len(ds.LossyImageCompressionRatio) == 2
    assert len(ds.SourceImageSequence) == 2
    first_uid = pydicom.dcmread(first[0]).SOPInstanceUID
    assert ds.SourceImageSequence[1].ReferencedSOPInstanceUID == first_uid
    assert ds.DerivationDescription.count("via fedcodec") == 2


def test_reconstructed_volume_needs_lossy_info(
    shared_series: dict[str, Series], tmp_path: Path
) -> None:
    series = shared_series["edge12 3"]
    reconstruction = np.clip(series.volume.astype(np.int32) + 1, -2048, 2047).astype(np.int16)
    with pytest.raises(FedcodecError, match="pass lossy=LossyInfo"):
        write_series(series, tmp_path / "refused", volume=reconstruction)
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    info = LossyInfo("FEDCODEC_NEURAL", 21.5, "neural codec fedcodec-v1, 0.74 bpp")
    paths = write_series(
        series, tmp_path / "ok", volume=reconstruction, lossy=info, transfer_syntax="jpegls"
    )
    ds = pydicom.dcmread(paths[0])
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "FEDCODEC_NEURAL"
    assert float(ds.LossyImageCompressionRatio) == 21.5
    assert "neural codec fedcodec-v1" in ds.DerivationDescription
    assert ds.SOPInstanceUID != series.datasets[0].SOPInstanceUID
    assert "SmallestImagePixelValue" not in ds
    np.testing.assert_array_equal(_reread(paths).volume, reconstruction)
    # an identical volume is not a reconstruction
    same = write_series(series, tmp_path / "same", volume=series.volume.copy())
    assert pydicom.dcmread(same[0]).SOPInstanceUID == series.datasets[0].SOPInstanceUID


def test_bad_requests_are_one_line_errors(shared_series: dict[str, Series], tmp_path: Path) -> None:
    series = shared_series["edge12 1"]
    with pytest.raises(UnknownNameError, match="unknown transfer syntax 'jpeg9'"):
        write_series(series, tmp_path, transfer_syntax="jpeg9")
    with pytest.raises(FedcodecError, match="takes no parameters"):
        write_series(series, tmp_path, transfer_syntax="explicit:level=3")
    with pytest.raises(FedcodecError, match="needs new UIDs"):
        write_series(series, tmp_path, transfer_syntax="j2k:ratio=10", new_uids=False)
    with pytest.raises(FedcodecError, match="shape"):
        write_series(series, tmp_path, volume=series.volume[:3])
    with pytest.raises(FedcodecError, match="do not fit 12-bit unsigned"):
        too_big = series.volume.astype(np.int32) + 4096
        write_series(series, tmp_path, volume=too_big, lossy=LossyInfo("X", 2))
    with pytest.raises(FedcodecError, match="not a DICOM code string"):
        LossyInfo("iso 14495", 2.0)
    with pytest.raises(FedcodecError, match="refusing to overwrite source file"):
        write_series(series, series.source_files[0].parent)
    assert not list(tmp_path.iterdir())


def test_lossless_copy_with_new_uids(shared_series: dict[str, Series], tmp_path: Path) -> None:
    series = shared_series["philips fmri"]
    paths = write_series(series, tmp_path, transfer_syntax="deflate", new_uids=True)
    written = [pydicom.dcmread(p) for p in paths]
    assert len({ds.SeriesInstanceUID for ds in written}) == 1
    assert written[0].SeriesInstanceUID != series.series_uid
    assert all(str(ds.get("LossyImageCompression", "")) != "01" for ds in written)
    new = {ds.SOPInstanceUID for ds in written}
    assert new.isdisjoint(d.SOPInstanceUID for d in series.datasets)
    np.testing.assert_array_equal(_reread(paths).volume, series.volume)


def test_a_failed_write_leaves_nothing_behind(
    shared_series: dict[str, Series], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    series = shared_series["philips fmri"]
    calls = {"n": 0}
    real_write, real_encode = write_module.write_atomic, write_module.dcmwrite

    def failing_write(path, data, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        return real_write(path, data, **kwargs)

    monkeypatch.setattr(write_module, "write_atomic", failing_write)
    with pytest.raises(FedcodecError, match="cannot write to .*No space left on device"):
        write_series(series, tmp_path / "disk")
    assert calls["n"] == 5
    assert list((tmp_path / "disk").iterdir()) == []

    def failing_encode(target, dataset, **kwargs):
        if dataset.InstanceNumber == series.datasets[3].InstanceNumber:
            raise ValueError("encoder bug")
        return real_encode(target, dataset, **kwargs)

    monkeypatch.setattr(write_module, "write_atomic", real_write)
    monkeypatch.setattr(write_module, "dcmwrite", failing_encode)
    with pytest.raises(ValueError, match="encoder bug"):
        write_series(series, tmp_path / "encode")
    assert list((tmp_path / "encode").iterdir()) == []
