"""Reader and writer cases the vendor data do not cover, on small synthetic files.

Enhanced multi-frame geometry (frames out of spatial order, two orientations in one file),
shuffled multi-volume series, legacy High Bit layout, 8-bit images, files without a preamble,
and images fedcodec must skip (colour, 32-bit, no pixels).
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fixtures.dicom.synthetic import make_mr, save
from pydicom.uid import generate_uid

from fedcodec.shared.dicom import Series, read_series, write_series
from fedcodec.shared.dicom.siemens_csa import parse_csa2
from fedcodec.shared.errors import FedcodecError

RNG = np.random.default_rng(7)
LOSSLESS = ["explicit", "implicit", "deflate", "rle", "jpegls", "j2k", "htj2k"]


def _image(
    rows: int = 12, cols: int = 10, high: int = 4096, low: int = 0, frames: int | None = None
) -> np.ndarray:
    shape = (rows, cols) if frames is None else (frames, rows, cols)
    return RNG.integers(low, high, shape).astype(np.int16 if low < 0 else np.uint16)


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_enhanced_frames_go_by_position_and_are_written_in_file_order(tmp_path: Path) -> None:
    frames = _image(frames=4)
    positions = [(0, 0, z) for z in (3.0, 1.0, 2.0, 0.0)]
    dataset = make_mr(frames, series_uid=generate_uid(), frame_positions=positions)
    save(dataset, _folder(tmp_path / "in") / "mf.dcm")
    [series], _ = read_series(tmp_path / "in")
    assert series.slice_sources == [(0, 3), (0, 1), (0, 2), (0, 0)]
    np.testing.assert_array_equal(series.volume, frames[[3, 1, 2, 0]])
    [path] = write_series(series, tmp_path / "out", transfer_syntax="jpegls")
    written = pydicom.dcmread(path)
    assert written.NumberOfFrames == 4
    np.testing.assert_array_equal(written.pixel_array, frames)  # file order kept
    [back], _ = read_series(tmp_path / "out")
    np.testing.assert_array_equal(back.volume, series.volume)


def test_two_orientations_in_one_file_become_parts_with_their_own_frames(tmp_path: Path) -> None:
    uid = generate_uid()
    frames = _image(frames=5)
    axial, coronal = (1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 0, -1)
    orientations = [axial, coronal, axial, coronal, axial]
    positions = [(0, 0, 2), (0, 5, 0), (0, 0, 0), (0, 3, 0), (0, 0, 1)]
    dataset = make_mr(
        frames, series_uid=uid, frame_positions=positions, frame_orientations=orientations
    )
    save(dataset, _folder(tmp_path / "in") / "localizer.dcm")
    parts, _ = read_series(tmp_path / "in")
    assert [s.part for s in parts] == [1, 2]
    assert [s.key for s in parts] == [f"{uid}#1", f"{uid}#2"]
    axial_part, coronal_part = parts
    assert [f for _, f in axial_part.slice_sources] == [2, 4, 0]  # z = 0, 1, 2
    # coronal normal: (1,0,0) x (0,0,-1) = (0,1,0), so y = 3 comes before y = 5
    assert [f for _, f in coronal_part.slice_sources] == [3, 1]
    [path] = write_series(coronal_part, tmp_path / "out")
    written = pydicom.dcmread(path)
    assert written.NumberOfFrames == 2
    assert len(written.PerFrameFunctionalGroupsSequence) == 2
    np.testing.assert_array_equal(written.pixel_array, frames[[1, 3]])
    [back], _ = read_series(tmp_path / "out")
    np.testing.assert_array_equal(back.volume, coronal_part.volume)
    assert coronal_part.datasets[0].NumberOfFrames == 5, "the source header is not modified"


def test_shuffled_multi_volume_series_is_ordered_volume_by_volume(tmp_path: Path) -> None:
    uid = generate_uid()
    folder = _folder(tmp_path / "fmri")
    images = {}
    names = [f"f{i:02d}.dcm" for i in range(12)]
    random.Random(3).shuffle(names)
    for volume in range(4):
        for slice_ in range(3):
            image = _image()
            images[volume, slice_] = image
            ds = make_mr(
                image,
                series_uid=uid,
                instance=volume * 3 + slice_ + 1,
                acquisition=volume + 1,
                position=(0.0, 0.0, 4.0 * (2 - slice_)),  # acquired top-down
            )
            save(ds, folder / names.pop())
    [series], _ = read_series(folder)
    expected = [images[v, s] for v in range(4) for s in (2, 1, 0)]  # ascending z within each volume
    np.testing.assert_array_equal(series.volume, np.stack(expected))
    acquisitions = [int(series.datasets[d].AcquisitionNumber) for d, _ in series.slice_sources]
    assert acquisitions == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_files_without_geometry_go_in_instance_order(tmp_path: Path) -> None:
    uid = generate_uid()
    folder = _folder(tmp_path)
    images = [_image() for _ in range(4)]
    for instance, name in zip((3, 1, 4, 2), "abcd", strict=True):
        ds = make_mr(
            images[instance - 1], series_uid=uid, instance=instance, position=None, orientation=None
        )
        save(ds, folder / f"{name}.dcm")
    [series], _ = read_series(folder)
    np.testing.assert_array_equal(series.volume, np.stack(images))


def test_high_bit_layout_and_garbage_bits_give_stored_values(tmp_path: Path) -> None:
    values = _image()
    high = make_mr(values, series_uid=generate_uid(), high_bit=15)
    save(high, _folder(tmp_path / "high") / "a.dcm")
    garbage = make_mr(values, series_uid=generate_uid(), garbage=0xA000)
    save(garbage, _folder(tmp_path / "garbage") / "a.dcm")
    for folder in ("high", "garbage"):
        [series], _ = read_series(tmp_path / folder)
        np.testing.assert_array_equal(series.volume[0], values)
        [path] = write_series(series, tmp_path / f"{folder}-out")
        written = pydicom.dcmread(path)
        assert (written.BitsStored, written.HighBit) == (12, 11)
        assert np.frombuffer(written.PixelData, "<u2").max() < 4096
        np.testing.assert_array_equal(written.pixel_array, values)


@pytest.mark.parametrize("syntax", LOSSLESS)
def test_eight_bit_images_round_trip(syntax: str, tmp_path: Path) -> None:
    values = _image(high=256).astype(np.uint8)
    dataset = make_mr(values, series_uid=generate_uid(), bits_allocated=8, bits_stored=8)
    save(dataset, _folder(tmp_path / "in") / "a.dcm")
    [series], _ = read_series(tmp_path / "in")
    assert series.volume.dtype == np.uint8 and series.bits_allocated == 8
    [path] = write_series(series, tmp_path / "out", transfer_syntax=syntax)
    [back], _ = read_series(tmp_path / "out")
    np.testing.assert_array_equal(back.volume, series.volume)
    np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, values)


@pytest.mark.parametrize("syntax", LOSSLESS)
def test_signed_twelve_bit_extremes_round_trip(syntax: str, tmp_path: Path) -> None:
    values = _image(low=-2048, high=2048)
    values[0, :4] = [-2048, 2047, -1, 0]
    dataset = make_mr(values, series_uid=generate_uid(), signed=True)
    save(dataset, _folder(tmp_path / "in") / "a.dcm")
    [series], _ = read_series(tmp_path / "in")
    [path] = write_series(series, tmp_path / "out", transfer_syntax=syntax)
    [back], _ = read_series(tmp_path / "out")
    np.testing.assert_array_equal(back.volume[0], values)
    np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, values)


def test_a_data_set_without_preamble_is_read(tmp_path: Path) -> None:
    values = _image()
    save(make_mr(values, series_uid=generate_uid()), tmp_path / "bare.dcm", preamble=False)
    assert (tmp_path / "bare.dcm").read_bytes()[128:132] != b"DICM"
    [series], skipped = read_series(tmp_path)
    assert not skipped
    np.testing.assert_array_equal(series.volume[0], values)


def test_images_fedcodec_cannot_hold_are_skipped_with_reasons(tmp_path: Path) -> None:
    uid = generate_uid()
    save(make_mr(_image(), series_uid=uid), tmp_path / "ok.dcm")
    colour = make_mr(_image(), series_uid=uid)
    colour.SamplesPerPixel = 3
    colour.PhotometricInterpretation = "RGB"
    colour.PlanarConfiguration = 0
    colour.PixelData = bytes(12 * 10 * 3 * 2)
    save(colour, tmp_path / "colour.dcm")
    wide = make_mr(_image(), series_uid=uid)
    wide.BitsAllocated, wide.BitsStored, wide.HighBit = 32, 32, 31
    wide.PixelData = bytes(12 * 10 * 4)
    save(wide, tmp_path / "wide.dcm")
    report = make_mr(_image(), series_uid=uid)
    del report.PixelData
    save(report, tmp_path / "report.dcm")
    series, skipped = read_series(tmp_path)
    assert [s.shape for s in series] == [(1, 12, 10)]
    reasons = {s.path.name: s.reason for s in skipped}
    assert reasons["colour.dcm"].startswith("colour image (3 samples per pixel)")
    assert reasons["wide.dcm"].startswith("Bits Allocated 32 is not supported")
    assert reasons["report.dcm"].startswith("no pixel data (SOP class MR Image Storage)")


def test_different_matrices_under_one_uid_become_parts(tmp_path: Path) -> None:
    uid = generate_uid()
    save(make_mr(_image(12, 10), series_uid=uid, instance=1), tmp_path / "a.dcm")
    save(make_mr(_image(8, 8), series_uid=uid, instance=2), tmp_path / "b.dcm")
    parts, _ = read_series(tmp_path)
    assert sorted(s.shape for s in parts) == [(1, 8, 8), (1, 12, 10)]
    assert sorted(s.part for s in parts) == [1, 2]
    assert len({i for s in parts for i in s.slice_ids}) == 2


def _csa2(tags: dict[str, list[str]]) -> bytes:
    blob = b"SV10\x04\x03\x02\x01" + struct.pack("<II", len(tags), 77)
    for name, values in tags.items():
        blob += name.encode().ljust(64, b"\0")
        blob += struct.pack("<i4siii", 1, b"IS\0\0", 6, len(values), 77)
        for value in values:
            data = value.encode() + b"\0"
            blob += struct.pack("<4i", len(data), len(data), 77, len(data))
            blob += data.ljust((len(data) + 3) // 4 * 4, b"\0")
    return blob


def test_csa2_parser_reads_values_and_survives_damage() -> None:
    blob = _csa2({"NumberOfImagesInMosaic": ["36"], "SliceNormalVector": ["0.0", "0.1", "0.99"]})
    assert parse_csa2(blob) == {
        "NumberOfImagesInMosaic": ["36"], "SliceNormalVector": ["0.0", "0.1", "0.99"]
    }
    assert parse_csa2(blob[:100]) == {}  # cut inside the first tag's items
    assert parse_csa2(b"SV10" + bytes(4) + struct.pack("<II", 10**6, 77)) == {}
    assert parse_csa2(b"not a CSA header") == {}


def test_progress_bars_and_series_without_headers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    save(make_mr(_image(), series_uid=generate_uid()), _folder(tmp_path / "in") / "a.dcm")
    [series], _ = read_series(tmp_path / "in", progress=True)
    write_series(series, tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert "Reading DICOM" in err and "Writing DICOM" in err
    bare = Series(
        series_uid="1.2.3", study_uid="", patient_id="", description="", modality="MR",
        volume=series.volume, bits_stored=12, signed=False,
    )
    with pytest.raises(FedcodecError, match="no source headers to write"):
        write_series(bare, tmp_path / "bare")
