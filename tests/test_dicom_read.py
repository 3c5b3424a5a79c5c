"""read_series on the real multi-vendor data, on pydicom's encoding test files, and on bad input.

The whole shared DICOM tree is read once per module (``tree``); every slice is then checked
against pydicom's own decoding of its source file, frame or mosaic tile, with the DICOM rules
for unused high bits applied independently here (mask unsigned, sign-extend signed).
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from conftest import require_shared_data
from pydicom.encaps import generate_frames

from fedcodec.shared.dicom import Series, read_series
from fedcodec.shared.errors import FedcodecError

with warnings.catch_warnings():  # nibabel warns that its DICOM support is experimental
    warnings.simplefilter("ignore")
    from nibabel.nicom import csareader

SITE = Path(pydicom.__file__).resolve().parents[1]  # the site-packages pydicom is installed in
PYDICOM_FILES = SITE / "pydicom/data/test_files"
PYDICOM_DATA = SITE / "data_store/data"


def _site(series: Series, root: Path) -> str:
    parts = series.source_files[0].relative_to(root).parts
    return "/".join(parts[:2]) if parts[0] == "siemens" else parts[0]


def expected_stored(pattern: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """The DICOM rule, written independently of the reader: mask, then sign-extend if signed."""
    bits = np.asarray(pattern).astype(np.int64) & 0xFFFF
    values = bits & ((1 << bits_stored) - 1)
    if signed:
        values = np.where(values >= 1 << (bits_stored - 1), values - (1 << bits_stored), values)
    return values


def _nibabel_tiles(ds: pydicom.Dataset) -> int:
    return int(csareader.get_n_mosaic(csareader.get_csa_header(ds, "image")))


# one worker runs the tests here (``make test`` runs two): the tree below is read once
pytestmark = pytest.mark.xdist_group("dicom-tree")


@pytest.fixture(scope="module")
def tree() -> tuple[Path, list[Series], list, float]:
    root = require_shared_data("dicom")
    start = time.perf_counter()
    series, skipped = read_series(root)
    return root, series, skipped, time.perf_counter() - start


def test_whole_tree_reads_fast(tree) -> None:
    _, series, _, seconds = tree
    assert series
    assert seconds < 60, f"reading the shared tree took {seconds:.1f} s"


def test_every_slice_equals_pydicom_decoding(tree) -> None:
    _, series, _, _ = tree
    checked = 0
    for s in series:
        decoded: dict[int, tuple[pydicom.Dataset, np.ndarray]] = {}
        for index, (dataset_index, frame) in enumerate(s.slice_sources):
            if dataset_index not in decoded:
                ds = pydicom.dcmread(s.source_files[dataset_index])
                decoded[dataset_index] = (ds, ds.pixel_array)
            ds, pixels = decoded[dataset_index]
            pixels = pixels.reshape(-1, ds.Rows, ds.Columns)
            tiles = s.mosaic_tiles[dataset_index]
            if tiles:
                assert tiles == _nibabel_tiles(ds)
                grid = math.ceil(math.sqrt(tiles))
                th, tw = ds.Rows // grid, ds.Columns // grid
                r, c = divmod(frame, grid)
                image = pixels[0, r * th : (r + 1) * th, c * tw : (c + 1) * tw]
            else:
                image = pixels[frame]
            want = expected_stored(image, int(ds.BitsStored), ds.PixelRepresentation == 1)
            np.testing.assert_array_equal(s.volume[index], want, err_msg=f"{s.key} slice {index}")
            checked += 1
        assert s.volume.dtype == (np.int16 if s.signed else np.uint16)
    assert checked == sum(s.shape[0] for s in series)


def test_series_and_slice_counts_match_the_data_readme(tree) -> None:
    root, series, _, _ = tree
    by_site: dict[str, list[Series]] = defaultdict(list)
    for s in series:
        by_site[_site(s, root)].append(s)
    shapes = {site: sorted(s.shape for s in group) for site, group in by_site.items()}
    assert shapes["ge"] == [(14, 256, 256), *[(100, 64, 64)] * 3, (130, 256, 256)]
    assert shapes["philips"] == [(27, 64, 64), (680, 80, 80)]
    assert shapes["toshiba"] == [(520, 64, 64)]
    assert shapes["siemens/siemens_b"] == [(35, 256, 256), (35, 256, 256), (13 * 25, 128, 128)]
    assert shapes["siemens/siemens_c"] == [(2 * 5, 72, 72)] * 4
    assert shapes["edge12"] == [(35, 64, 64)] * 3
    bits = {site: {s.bits_stored for s in group} for site, group in by_site.items()}
    assert bits == {
        "ge": {16}, "philips": {12}, "toshiba": {16}, "edge12": {12},
        "siemens/siemens_a": {12}, "siemens/siemens_b": {12}, "siemens/siemens_c": {12},
    }
    toshiba = by_site["toshiba"][0]
    assert toshiba.volume.max() == 16383
    # siemens_a: the README says 20 orientation series; the folder holds 21 (axasc36 and
    # axasc36b are both ax_asc_36sl), 2 mosaic files each
    siemens_a = by_site["siemens/siemens_a"]
    assert len(siemens_a) == 21
    assert all(len(s.source_files) == 2 for s in siemens_a)
    assert {int(s.datasets[0].Rows) for s in siemens_a} == {384, 516}


def test_siemens_a_mosaics_split_into_their_slice_count(tree) -> None:
    root, series, _, _ = tree
    for s in (s for s in series if _site(s, root) == "siemens/siemens_a"):
        rows = int(s.datasets[0].Rows)
        if s.description.endswith("sl"):  # e.g. ax_asc_35sl: 35 slices per mosaic
            expected = int(s.description.rsplit("_", 1)[1][:-2])
        else:
            expected = _nibabel_tiles(s.datasets[0])
        assert s.mosaic_tiles == [expected, expected], s.description
        grid = math.ceil(math.sqrt(expected))
        assert s.shape == (2 * expected, rows // grid, rows // grid)
        assert s.source_files[0].name != s.source_files[1].name


def test_mosaics_are_kept_whole_on_request() -> None:
    folder = require_shared_data("dicom", "siemens", "siemens_c", "In", "20180918Si", "mr_0003")
    [whole], _ = read_series(folder, split_mosaics=False)
    assert whole.shape == (2, 216, 216)
    assert whole.mosaic_tiles == [0, 0]
    [split], _ = read_series(folder)
    assert split.shape == (10, 72, 72)
    grid = whole.volume[0].reshape(3, 72, 3, 72).swapaxes(1, 2).reshape(9, 72, 72)
    np.testing.assert_array_equal(split.volume[:5], grid[:5])


def test_edge12_cases_as_its_readme_says(tree) -> None:
    root, series, _, _ = tree
    edge = {int(s.datasets[0].SeriesNumber): s for s in series if _site(s, root) == "edge12"}
    assert sorted(edge) == [2, 3, 4]
    assert len({s.series_uid for s in edge.values()}) == 1, "edge12 files share one UID"
    assert sorted(s.part for s in edge.values()) == [1, 2, 3]
    assert len({s.key for s in edge.values()}) == 3
    assert len({sid for s in edge.values() for sid in s.slice_ids}) == 3 * 35

    plain, stripes, signed = edge[2], edge[3], edge[4]
    assert not plain.signed and plain.volume.dtype == np.uint16
    assert 0 <= plain.volume.min() and plain.volume.max() <= 4095

    raw = np.frombuffer(pydicom.dcmread(stripes.source_files[0]).PixelData, "<u2")
    assert raw.max() > 4095, "the stripes file carries garbage in its high bits"
    assert not stripes.signed and stripes.volume.max() == 4095
    values = set(np.unique(stripes.volume).tolist())
    assert {3855, 4095} <= values

    assert signed.signed and signed.volume.dtype == np.int16
    assert signed.volume.min() >= -2048 and signed.volume.max() <= 2047
    assert {-241, -1} <= set(np.unique(signed.volume).tolist())
    # the stripe pixels are the same in both files: 0x0F0F -> 3855 unsigned, -241 signed
    for u, s in ((3855, -241), (4095, -1)):
        both = (signed.volume == s) & (stripes.volume == u)
        np.testing.assert_array_equal(stripes.volume == u, both)


def _normal_offsets(s: Series) -> list[float]:
    offsets = []
    for dataset_index, _ in s.slice_sources:
        ds = s.datasets[dataset_index]
        iop = np.array(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        offsets.append(float(np.dot(np.array(ds.ImagePositionPatient, float), normal)))
    return offsets


def test_slices_ascend_along_the_normal_volume_by_volume(tree) -> None:
    root, series, _, _ = tree
    multi_volume = {}
    for s in (s for s in series if not any(s.mosaic_tiles)):
        offsets = np.array(_normal_offsets(s))
        positions = len(np.unique(offsets.round(3)))
        volumes = s.shape[0] // positions
        assert volumes * positions == s.shape[0], s.description
        grid = offsets.reshape(volumes, positions)
        assert np.all(np.diff(grid, axis=1) > 0), f"{s.description}: not ascending within a volume"
        assert np.allclose(grid, grid[0]), f"{s.description}: volumes hold different positions"
        assert s.positions_per_volume == positions, s.description  # the codec's header period
        order = [
            (int(s.datasets[d].get("AcquisitionNumber") or 0), int(s.datasets[d].InstanceNumber))
            for d, _ in s.slice_sources
        ]
        keys = np.array(order).reshape(volumes, positions, 2)
        for p in range(positions):
            assert [tuple(k) for k in keys[:, p]] == sorted(tuple(k) for k in keys[:, p])
        multi_volume[s.description] = volumes
    assert multi_volume["Ax DWI TENSOR R2"] == 7
    assert multi_volume["fMRI Multiphase Des"] == 10
    assert multi_volume["dti_ax"] == 17
    assert multi_volume["DTI AX 30d"] == 13
    assert multi_volume["3D Ax T1 MP-RAGE_R22"] == 1


def test_philips_dti_volumes_each_hold_one_gradient(tree) -> None:
    _, series, _, _ = tree
    [dti] = [s for s in series if s.description == "dti_ax"]
    for volume in range(17):
        sources = dti.slice_sources[volume * 40 : (volume + 1) * 40]
        headers = [dti.datasets[d] for d, _ in sources]
        gradients = {
            (tuple(np.round(h.DiffusionGradientOrientation, 4)), float(h.DiffusionBValue))
            for h in headers
        }
        assert len(gradients) == 1, f"volume {volume} mixes gradients {gradients}"


def test_mosaic_tiles_follow_the_csa_slice_normal(tree) -> None:
    _, series, _, _ = tree
    orders = Counter()
    for s in (s for s in series if any(s.mosaic_tiles)):
        ds = s.datasets[0]
        iop = np.array(ds.ImageOrientationPatient, float)
        csa_normal = csareader.get_slice_normal(csareader.get_csa_header(ds, "image"))
        ascending = float(np.dot(csa_normal, np.cross(iop[:3], iop[3:]))) > 0
        tiles = s.mosaic_tiles[0]
        for volume in range(len(s.datasets)):
            block = s.slice_sources[volume * tiles : (volume + 1) * tiles]
            assert {d for d, _ in block} == {block[0][0]}, "a volume mixes mosaics"
            expected = list(range(tiles)) if ascending else list(range(tiles))[::-1]
            assert [t for _, t in block] == expected
        acquisitions = [int(s.datasets[d].AcquisitionNumber) for d, _ in s.slice_sources[::tiles]]
        assert acquisitions == sorted(acquisitions)
        orders["ascending" if ascending else "descending"] += 1
    assert orders["descending"] == 6, "the six sagittal siemens_a series store tiles descending"


def test_non_dicom_files_are_skipped_with_a_reason(tree) -> None:
    root, _, skipped, _ = tree
    reasons = {p.path.relative_to(root).as_posix(): p.reason for p in skipped}
    for name in (
        "philips/In/Magdeburg_2014/notes.txt",
        "siemens/siemens_a/In/Orientation/ax/axasc35/6_ax_asc_35sl.nii",
        "edge12/README.md",
        "toshiba/LICENSE",
    ):
        assert reasons[name].startswith("not a DICOM file"), reasons[name]
    assert all("\n" not in r for r in reasons.values())


def test_compressed_shared_files_match_an_independent_decoder(tree) -> None:
    _, series, _, _ = tree
    decoders = {
        "1.2.840.10008.1.2.4.70": imagecodecs.ljpeg_decode,
        "1.2.840.10008.1.2.4.90": imagecodecs.jpeg2k_decode,
    }
    seen = set()
    for s in series:
        syntax = str(s.datasets[0].file_meta.TransferSyntaxUID)
        if syntax not in decoders:
            continue
        seen.add(syntax)
        tiles = s.mosaic_tiles[0]
        for d, path in enumerate(s.source_files):
            ds = pydicom.dcmread(path)
            [stream] = list(generate_frames(ds.PixelData, number_of_frames=1))
            mosaic = decoders[syntax](stream)
            grid = math.ceil(math.sqrt(tiles))
            th = mosaic.shape[0] // grid
            for index, (dataset_index, tile) in enumerate(s.slice_sources):
                if dataset_index == d:
                    r, c = divmod(tile, grid)
                    tile_image = mosaic[r * th : (r + 1) * th, c * th : (c + 1) * th]
                    np.testing.assert_array_equal(s.volume[index], tile_image)
    assert seen == set(decoders)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm",
    ],
)
def test_every_encoding_of_mr_small_gives_the_same_volume(name: str) -> None:
    [reference], _ = read_series(PYDICOM_FILES / "MR_small.dcm")
    assert reference.signed and reference.volume.dtype == np.int16
    assert reference.shape == (1, 64, 64)
    [other], skipped = read_series(PYDICOM_FILES / name)
    assert not skipped
    np.testing.assert_array_equal(other.volume, reference.volume)
    assert "PixelData" not in other.datasets[0]


@pytest.mark.parametrize(
    "name",
    [
        "emri_small_big_endian.dcm", "emri_small_RLE.dcm",
        "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm",
    ],
)
def test_every_encoding_of_the_multiframe_emri_gives_the_same_volume(name: str) -> None:
    [reference], _ = read_series(PYDICOM_DATA / "emri_small.dcm")
    assert reference.shape == (10, 64, 64) and len(reference.datasets) == 1
    assert reference.slice_sources == [(0, f) for f in range(10)]
    pixels = pydicom.dcmread(PYDICOM_DATA / "emri_small.dcm").pixel_array
    np.testing.assert_array_equal(reference.volume, pixels)
    [other], _ = read_series(PYDICOM_DATA / name)
    np.testing.assert_array_equal(other.volume, reference.volume)


@pytest.mark.parametrize(
    "pair", [("MR2_J2KR.dcm", "MR2_UNCR.dcm"), ("MR2_J2KI.dcm", "MR2_UNCI.dcm")]
)
def test_j2k_files_equal_their_uncompressed_twins(pair: tuple[str, str]) -> None:
    [compressed], _ = read_series(PYDICOM_DATA / pair[0])
    [plain], _ = read_series(PYDICOM_DATA / pair[1])
    assert compressed.shape == (1, 1024, 1024)
    np.testing.assert_array_equal(compressed.volume, plain.volume)


def test_bad_files_are_skipped_and_good_ones_kept(tmp_path: Path) -> None:
    good = PYDICOM_FILES / "MR_small.dcm"
    shutil.copy(good, tmp_path / "good.dcm")
    shutil.copy(good, tmp_path / "copy_of_good.dcm")
    data = good.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "header_only.dcm").write_bytes(data[:200])
    shutil.copy(PYDICOM_FILES / "MR_truncated.dcm", tmp_path / "MR_truncated.dcm")
    (tmp_path / "notes.txt").write_text("scanner notes\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "image.nii").write_bytes(b"\x5c\x01\x00\x00" + bytes(400))
    series, skipped = read_series(tmp_path)
    assert len(series) == 1 and series[0].shape == (1, 64, 64)
    assert [p.name for p in series[0].source_files] == ["copy_of_good.dcm"]  # first in path order
    reasons = {s.path.name: s.reason for s in skipped}
    assert set(reasons) == {
        "good.dcm", "cut.dcm", "header_only.dcm", "MR_truncated.dcm", "notes.txt", "image.nii"
    }
    assert reasons["notes.txt"].startswith("not a DICOM file")
    assert reasons["image.nii"].startswith("not a DICOM file")
    assert "truncated" in reasons["MR_truncated.dcm"]
    assert "truncated" in reasons["cut.dcm"] or "corrupt" in reasons["cut.dcm"]
    assert reasons["header_only.dcm"]
    assert reasons["good.dcm"].startswith("duplicate of")
    assert all("\n" not in r and len(r) < 300 for r in reasons.values())


def test_nothing_to_read_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(FedcodecError, match="no files in"):
        read_series(tmp_path)
    (tmp_path / "README").write_text("no images here")
    with pytest.raises(FedcodecError, match=r"no DICOM images in .*1 files skipped"):
        read_series(tmp_path)
    with pytest.raises(FedcodecError, match="no such file or folder"):
        read_series(tmp_path / "missing")
    with pytest.raises(FedcodecError, match="no DICOM images"):
        read_series(PYDICOM_FILES / "rtplan.dcm")
