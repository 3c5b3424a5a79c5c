"""Image sources -> stacks: NIfTI, .npy, DICOM, the embedded demo MRI, and the error paths."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from conftest import require_shared_data
from fedcodec.shared.demo_data import DEMO_SOURCES, demo_paths, demo_stacks
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.pixels import from_unsigned
from fedcodec.shared.sources import SliceStack, first_slices, read_stacks, with_unique_names


def _save_nifti(path: Path, data: np.ndarray, slope: float | None = None) -> Path:
    image = nib.Nifti1Image(data, np.eye(4))
    if slope is not None:
        image.header.set_slope_inter(slope, 0.0)
    nib.save(image, path)
    return path


def test_npy_2d_is_one_slice_with_smallest_bit_depth(tmp_path: Path) -> None:
    image = np.arange(30 * 40, dtype=np.uint16).reshape(30, 40)
    image[7, 9] = 3000  # max 3000 -> 12 bits
    np.save(tmp_path / "one.npy", image)
    (stack,), skipped = read_stacks(tmp_path / "one.npy")
    assert skipped == []
    assert stack.volume.shape == (1, 30, 40)
    assert (stack.bits, stack.signed) == (12, False)
    assert stack.slice_ids == ["one.npy/0"]
    unsigned, offset = stack.codec_volume()
    assert offset == 0 and unsigned.dtype == np.uint16
    np.testing.assert_array_equal(unsigned[0], image)


def test_npy_signed_stack_is_shifted_for_codecs_and_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    volume = rng.integers(-300, 200, size=(3, 16, 20), dtype=np.int16)
    volume[0, 0, 0], volume[0, 0, 1] = -300, 199
    np.save(tmp_path / "signed.npy", volume)
    (stack,), _ = read_stacks(tmp_path / "signed.npy")
    assert (stack.bits, stack.signed) == (10, True)  # -512..511 holds -300..199; 9 bits would not
    unsigned, offset = stack.codec_volume()
    assert offset == 512 and unsigned.dtype == np.uint16
    assert unsigned.min() == 212 and unsigned.max() == 711
    np.testing.assert_array_equal(from_unsigned(unsigned, offset, True), volume)
    assert stack.slice_ids == ["signed.npy/0", "signed.npy/1", "signed.npy/2"]


def test_float_npy_with_integer_values_is_accepted(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.array([[0.0, 255.0], [17.0, 3.0]], dtype=np.float32))
    (stack,), _ = read_stacks(tmp_path / "f.npy")
    assert stack.bits == 8 and not stack.signed
    np.testing.assert_array_equal(stack.volume[0], [[0, 255], [17, 3]])


def test_float_npy_with_fractions_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.array([[0.5, 1.0]], dtype=np.float64))
    with pytest.raises(FedcodecError, match="non-integer float64 values"):
        read_stacks(tmp_path / "f.npy")


def test_npy_wider_than_16_bits_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "wide.npy", np.array([[0, 70000]], dtype=np.int32))
    with pytest.raises(FedcodecError, match="need 17 bits"):
        read_stacks(tmp_path / "wide.npy")


def test_npy_of_wrong_rank_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "4d.npy", np.zeros((2, 2, 2, 2), dtype=np.uint8))
    with pytest.raises(FedcodecError, match="expected a 2-D image or 3-D stack"):
        read_stacks(tmp_path / "4d.npy")


def test_corrupt_npy_is_a_corrupt_data_error(tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((64, 64), dtype=np.uint16))
    data = (tmp_path / "bad.npy").read_bytes()
    (tmp_path / "bad.npy").write_bytes(data[:200])
    with pytest.raises(CorruptDataError, match="cannot read .npy file"):
        read_stacks(tmp_path / "bad.npy")


def test_nifti_3d_keeps_stored_values_and_slices_along_z(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4096, size=(12, 10, 5), dtype=np.int16)  # x, y, z
    path = _save_nifti(tmp_path / "vol.nii.gz", data, slope=2.5)  # scaling must be ignored
    (stack,), _ = read_stacks(path)
    assert stack.volume.shape == (5, 10, 12)  # (z, y, x)
    for z in range(5):
        np.testing.assert_array_equal(stack.volume[z], data[:, :, z].T)
    assert (stack.bits, stack.signed) == (12, False)  # int16 dtype, but no negative value
    assert stack.name == "vol.nii.gz"


def test_nifti_4d_is_split_into_volumes_in_order(tmp_path: Path) -> None:
    data = np.zeros((6, 7, 3, 4), dtype=np.uint8)
    for t in range(4):
        data[..., t] = t * 10 + 1
    path = _save_nifti(tmp_path / "dwi.nii", data)
    stacks, _ = read_stacks(path)
    assert [s.name for s in stacks] == [f"dwi.nii:vol{t}" for t in range(4)]
    assert [int(s.volume[0, 0, 0]) for s in stacks] == [1, 11, 21, 31]
    assert all(s.volume.shape == (3, 7, 6) and s.bits == 5 for s in stacks)
    ids = [i for s in stacks for i in s.slice_ids]
    assert len(set(ids)) == 12 and ids[3] == "dwi.nii:vol1/0"


def test_nifti_float_with_fractions_is_refused(tmp_path: Path) -> None:
    path = _save_nifti(tmp_path / "f.nii.gz", np.full((4, 4, 2), 0.25, dtype=np.float32))
    with pytest.raises(FedcodecError, match="non-integer float32 values"):
        read_stacks(path)


def test_truncated_nifti_is_a_corrupt_data_error(tmp_path: Path) -> None:
    path = _save_nifti(tmp_path / "t.nii", np.ones((32, 32, 8), dtype=np.int16))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CorruptDataError, match="cannot read NIfTI file"):
        read_stacks(path)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FedcodecError, match="no such file or folder"):
        read_stacks(tmp_path / "nothing-here")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(FedcodecError, match="folder is empty"):
        read_stacks(tmp_path / "empty")


def test_folder_without_images_and_unsupported_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image\n")
    with pytest.raises(FedcodecError, match=r"no DICOM images in .* \(1 files skipped; e.g. notes"):
        read_stacks(tmp_path)
    message = r"not a DICOM file .*; fedcodec reads DICOM, .nii, .nii.gz and .npy$"
    with pytest.raises(FedcodecError, match=message):
        read_stacks(tmp_path / "notes.txt")


def test_first_slices_cuts_across_stacks(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((4, 8, 8), dtype=np.uint8))
    (a,), _ = read_stacks(tmp_path / "a.npy")
    np.save(tmp_path / "b.npy", np.ones((4, 8, 8), dtype=np.uint8))
    (b,), _ = read_stacks(tmp_path / "b.npy")
    kept = first_slices([a, b], 6)
    assert [s.volume.shape[0] for s in kept] == [4, 2]
    assert kept[1].slice_ids == ["b.npy/0", "b.npy/1"]
    assert first_slices([a, b], None) == [a, b]
    with pytest.raises(FedcodecError, match="at least 1"):
        first_slices([a], 0)


def test_dicom_folder_keeps_bits_stored_and_sign() -> None:
    folder = require_shared_data("dicom", "edge12")
    stacks, skipped = read_stacks(folder)
    # Three mosaic files sharing one SeriesInstanceUID: three stacks, each its own name.
    assert len(stacks) == 3 and len({s.name for s in stacks}) == 3
    ids = [i for s in stacks for i in s.slice_ids]
    assert len(set(ids)) == len(ids) == sum(s.volume.shape[0] for s in stacks)
    assert {s.bits for s in stacks} == {12}
    signed = [s for s in stacks if s.signed]
    assert len(signed) == 1 and signed[0].volume.min() < 0
    for stack in stacks:
        unsigned, offset = stack.codec_volume()
        assert int(unsigned.max()) < 4096
        np.testing.assert_array_equal(from_unsigned(unsigned, offset, stack.signed), stack.volume)
    assert {p.path.name for p in skipped} >= {"README.md", "LICENSE"}


def test_demo_sources_are_installed_and_distinct() -> None:
    found = demo_paths()
    assert len(found) == len(DEMO_SOURCES)  # pydicom-data, pydicom and dipy are dependencies
    uids = set()
    for source, path in found:
        if path.suffix == ".dcm":
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            uids.add(ds.SOPInstanceUID)
    assert len(uids) == 4  # four distinct DICOM images, no re-encoded duplicate


def test_demo_stacks_load_without_download() -> None:
    stacks, _ = demo_stacks()
    ids = [i for s in stacks for i in s.slice_ids]
    assert len(ids) == len(set(ids))
    shapes = {s.volume.shape[1:] for s in stacks}
    assert (1024, 1024) in shapes and (128, 128) in shapes and (10, 10) in shapes
    assert sum(s.volume.shape[0] for s in stacks) == 1 + 1 + 10 + 1 + 10 + 24 + 2 * 10
    assert any(s.signed for s in stacks)  # pydicom's MR_small is signed 16-bit


def test_mosaics_can_be_kept_as_stored() -> None:
    folder = require_shared_data("dicom", "edge12")
    split, _ = read_stacks(folder)
    kept, _ = read_stacks(folder, split_mosaics=False)
    assert [s.volume.shape for s in kept] == [(1, 384, 384)] * 3
    assert sum(s.pixels for s in split) <= sum(s.pixels for s in kept)  # tiles drop the padding


def test_repeated_names_get_distinct_slice_ids() -> None:
    volume = np.zeros((2, 4, 4), dtype=np.uint8)
    stacks = [SliceStack(n, volume, 2, False, Path(n)) for n in ("a", "a~2", "a", "a")]
    assert [s.name for s in with_unique_names(stacks)] == ["a", "a~2", "a~3", "a~4"]
