"""Read a file or a folder of MR DICOM into :class:`Series` of stored values.

Every file is tried; what is not a usable image (a README, a NIfTI, a truncated or corrupt file,
a structured report, a colour image, a duplicate SOP instance) comes back as a
:class:`SkippedFile` with a one-line reason instead of stopping the read. Grouping and slice order
are in :mod:`fedcodec.shared.dicom.slice_order`; value decoding (masking, sign extension) in
:mod:`fedcodec.shared.dicom.stored_values`.

Reading is serial on purpose: pydicom parsing holds the GIL, so a thread pool made parsing and
decoding the 1.8k-file shared tree slower (5.5 s vs 2.4 s); the whole read, grouping included,
takes about 5 s of CPU.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from tqdm import tqdm

from fedcodec.shared.dicom.frame_geometry import FrameGeometry, frame_geometries, tile_geometries
from fedcodec.shared.dicom.mosaic import mosaic_layout, split_mosaic
from fedcodec.shared.dicom.series import Series, SkippedFile
from fedcodec.shared.dicom.siemens_csa import csa_image_header, is_mosaic, mosaic_tile_count
from fedcodec.shared.dicom.slice_order import (
    SliceRecord,
    order_slices,
    positions_per_volume,
    split_by_orientation,
)
from fedcodec.shared.dicom.stored_values import PixelFormat, pixel_format, stored_frames
from fedcodec.shared.errors import CorruptDataError, FedcodecError


@dataclass
class _DecodedFile:
    path: Path
    dataset: pydicom.Dataset
    fmt: PixelFormat
    slices: np.ndarray
    """(n, rows, cols) stored values: the frames, or the mosaic tiles."""
    geometries: list[FrameGeometry]
    mosaic_tiles: int


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200] + ("..." if len(text) > 200 else "")


def _looks_like_bare_dataset(head: bytes) -> bool:
    """A DICOM data set without the 128-byte preamble: it starts with a group 0002/0008 tag."""
    if len(head) < 8:
        return False
    little = head[:2] in (b"\x02\x00", b"\x08\x00") and head[3] == 0
    big = head[:2] in (b"\x00\x02", b"\x00\x08") and head[2] == 0
    return little or big


def _open(path: Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        with path.open("rb") as handle:
            head = handle.read(8)
        if not _looks_like_bare_dataset(head):
            raise FedcodecError("not a DICOM file (no 'DICM' prefix, no DICOM data set)") from None
        try:
            return pydicom.dcmread(path, force=True)
        except Exception as exc:
            raise CorruptDataError(f"corrupt DICOM: {_one_line(exc)}") from None
    except (EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise CorruptDataError(f"truncated or corrupt DICOM: {_one_line(exc)}") from None


PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _holds_pixel_data(path: Path) -> bool:
    """True when ``path`` is an image the reader could not take: a DICOM data set with pixel
    data (read lazily: large values are not loaded), however unreadable or unsupported; one whose
    SOP class (or its file meta's) is an image storage class but whose pixels are missing (a
    file cut short); or a DICOM file (``DICM`` prefix) cut before any SOP class. A DICOMDIR, a
    presentation state or raw data is not an image."""
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
        prefixed = head[128:] == b"DICM"
        if not prefixed and not _looks_like_bare_dataset(head[:8]):
            return False  # not DICOM at all
        with warnings.catch_warnings():  # a damaged file makes pydicom guess aloud
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, defer_size=1024, force=True)
        if any(tag in ds for tag in PIXEL_TAGS):
            return True
        meta = getattr(ds, "file_meta", None)
        sop = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
        if not sop:
            return prefixed
        return "Image Storage" in str(getattr(pydicom.uid.UID(str(sop)), "name", ""))
    except Exception:  # noqa: BLE001 - a reader must survive any malformed file
        return False


def _decode(path: Path, split_mosaics: bool) -> _DecodedFile:
    ds = _open(path)
    fmt = pixel_format(ds)
    slices = stored_frames(ds)
    geometries = frame_geometries(ds, fmt.frames)
    tiles = 0
    if split_mosaics and fmt.frames == 1 and is_mosaic(ds):
        csa = csa_image_header(ds)
        count = mosaic_tile_count(ds, csa)
        layout = mosaic_layout(fmt.rows, fmt.columns, count) if count else None
        if layout is not None:
            slices = split_mosaic(slices[0], layout)
            geometries = tile_geometries(ds, geometries[0], layout, csa)
            tiles = layout.tiles
    del ds.PixelData
    return _DecodedFile(path, ds, fmt, slices, geometries, tiles)


def _same_image(a: _DecodedFile, b: _DecodedFile) -> bool:
    """True for a second copy of one file; edge12 reuses one SOP Instance UID for 3 images."""
    return _group_key(a) == _group_key(b) and np.array_equal(a.slices, b.slices)


def _series_number(ds: pydicom.Dataset) -> float:
    try:
        return float(ds.get("SeriesNumber"))
    except (TypeError, ValueError):
        return -1.0


def _group_key(item: _DecodedFile) -> tuple:
    ds = item.dataset
    uid = str(ds.get("SeriesInstanceUID") or f"no-series-uid:{item.path.parent}")
    fmt = item.fmt
    return (
        uid,
        _series_number(ds),
        fmt.bits_allocated,
        fmt.bits_stored,
        fmt.signed,
        item.slices.shape[1],
        item.slices.shape[2],
    )


def _build_series(records: list[SliceRecord], files: list[_DecodedFile], part: int) -> Series:
    used = sorted({r.file_index for r in records}, key=lambda i: str(files[i].path))
    local = {file_index: n for n, file_index in enumerate(used)}
    first = files[used[0]].dataset
    fmt = files[used[0]].fmt
    rescale = [r.geometry.rescale for r in records]
    return Series(
        series_uid=str(first.get("SeriesInstanceUID") or ""),
        study_uid=str(first.get("StudyInstanceUID") or ""),
        patient_id=str(first.get("PatientID") or ""),
        description=str(first.get("SeriesDescription") or ""),
        modality=str(first.get("Modality") or ""),
        volume=np.stack([files[r.file_index].slices[r.frame] for r in records]),
        bits_stored=fmt.bits_stored,
        signed=fmt.signed,
        rescale_slope=rescale[0][0],
        rescale_intercept=rescale[0][1],
        datasets=[files[i].dataset for i in used],
        source_files=[files[i].path for i in used],
        slice_sources=[(local[r.file_index], r.frame) for r in records],
        part=part,
        mosaic_tiles=[files[i].mosaic_tiles for i in used],
        slice_rescale=rescale,
        bits_allocated=fmt.bits_allocated,
        positions_per_volume=positions_per_volume(records),
    )


def _group(decoded: list[_DecodedFile]) -> list[Series]:
    """Slices grouped into series (by UID, then orientation), each in slice order."""
    groups: dict[tuple, list[SliceRecord]] = defaultdict(list)
    for file_index, item in enumerate(decoded):
        key = _group_key(item)
        for frame, geometry in enumerate(item.geometries):
            groups[key].append(SliceRecord(file_index, frame, item.path, key, geometry))

    by_uid: dict[str, list[list[SliceRecord]]] = defaultdict(list)
    for key in sorted(groups, key=lambda k: (k[0], k[1], str(groups[k][0].path))):
        for cluster in split_by_orientation(groups[key]):
            by_uid[key[0]].append(order_slices(cluster))
    series = [
        _build_series(records, decoded, part=index + 1 if len(parts) > 1 else 0)
        for parts in by_uid.values()
        for index, records in enumerate(parts)
    ]
    series.sort(key=lambda s: (s.study_uid, _series_number(s.datasets[0]), s.series_uid, s.part))
    return series


def read_series(
    path: Path, *, split_mosaics: bool = True, progress: bool = False
) -> tuple[list[Series], list[SkippedFile]]:
    """Read ``path`` (a DICOM file or a folder, searched recursively) into series.

    Returns the series sorted by (StudyInstanceUID, Series Number, SeriesInstanceUID, part) and
    the files that were skipped, each with its reason. Raises FedcodecError when ``path`` does not
    exist or holds no readable DICOM image. Mosaics are split into their tiles unless
    ``split_mosaics`` is False.
    """
    path = Path(path)
    if not path.exists():
        raise FedcodecError(f"no such file or folder: {path}")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FedcodecError(f"no files in {path}")
    decoded: list[_DecodedFile] = []
    skipped: list[SkippedFile] = []
    instances: dict[str, int] = {}
    for file in tqdm(files, desc="Reading DICOM", unit="file", disable=not progress):
        try:
            item = _decode(file, split_mosaics)
        except CorruptDataError as exc:  # a DICOM file that could not even be parsed
            skipped.append(SkippedFile(file, str(exc), image=True))
            continue
        except FedcodecError as exc:
            skipped.append(SkippedFile(file, str(exc), image=_holds_pixel_data(file)))
            continue
        except Exception as exc:  # a reader must survive any malformed file
            skipped.append(SkippedFile(file, f"unreadable DICOM: {_one_line(exc)}",
                                       image=_holds_pixel_data(file)))
            continue
        sop = str(item.dataset.get("SOPInstanceUID") or "")
        twin = instances.get(sop)
        if sop and twin is not None and _same_image(decoded[twin], item):
            reason = f"duplicate of {decoded[twin].path} (same SOP instance)"
            skipped.append(SkippedFile(file, reason))
            continue
        instances.setdefault(sop, len(decoded))
        decoded.append(item)
    if not decoded:
        first = f"; e.g. {skipped[0].path.name}: {skipped[0].reason}" if skipped else ""
        raise FedcodecError(f"no DICOM images in {path} ({len(skipped)} files skipped{first})")

    try:  # elements are parsed lazily: a damaged one may first be met here
        series = _group(decoded)
    except FedcodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on malformed values
        raise CorruptDataError(
            f"cannot sort the DICOM files under {path} into series: {_one_line(exc)}"
        ) from None
    return series, skipped
