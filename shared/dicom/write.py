"""Write a :class:`Series` back to DICOM, optionally with a replacement (decoded) volume.

One output file per source file, named like it: a multi-frame file stays multi-frame (only the
frames this series holds, per-frame functional groups trimmed to match), a Siemens mosaic is
re-assembled from its tiles (unused grid tiles written as zeros). Headers are the source headers
with the pixel attributes, transfer syntax and, for lossy output, the PS3.3 lossy attributes and
new UIDs (see :mod:`fedcodec.shared.dicom.lossy`). Lossless output keeps every UID unless
``new_uids=True``.

Every file is encoded in memory first, so a codec or header error writes nothing; the files are
then written one by one through :mod:`fedcodec.shared.atomic_files` (temporary file, fsync,
rename), and an I/O error removes the files this call had created, so a failed write into a new
folder leaves it empty. (Memory: one encoded copy of the series.)
"""

from __future__ import annotations

import copy
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid
from tqdm import tqdm

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.dicom.frame_encoding import (
    EncodedPixels,
    codec_pixel_data,
    native_pixel_data,
    rle_pixel_data,
)
from fedcodec.shared.dicom.header_copy import replace_element, shallow_header_copy
from fedcodec.shared.dicom.lossy import LossyInfo, mark_lossy
from fedcodec.shared.dicom.mosaic import assemble_mosaic, mosaic_layout
from fedcodec.shared.dicom.series import Series
from fedcodec.shared.dicom.stored_values import transfer_syntax as source_syntax
from fedcodec.shared.dicom.transfer_syntax import OutputSyntax, output_syntax
from fedcodec.shared.errors import FedcodecError

_SWAP_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _checked_volume(series: Series, volume: np.ndarray | None) -> np.ndarray:
    if volume is None:
        return series.volume
    volume = np.asarray(volume)
    if volume.shape != series.volume.shape:
        raise FedcodecError(
            f"replacement volume has shape {volume.shape}, series has {series.shape}"
        )
    if not np.issubdtype(volume.dtype, np.integer):
        raise FedcodecError(f"replacement volume must hold integers, not {volume.dtype}")
    low, high = (
        (-(1 << (series.bits_stored - 1)), (1 << (series.bits_stored - 1)) - 1)
        if series.signed
        else (0, (1 << series.bits_stored) - 1)
    )
    if volume.size and (volume.min() < low or volume.max() > high):
        raise FedcodecError(
            f"replacement volume values {volume.min()}..{volume.max()} do not fit "
            f"{series.bits_stored}-bit {'signed' if series.signed else 'unsigned'} stored values"
        )
    return volume.astype(series.volume.dtype)


def _frames_by_dataset(series: Series) -> dict[int, dict[int, int]]:
    """dataset index -> {frame or tile index: slice index}."""
    frames: dict[int, dict[int, int]] = defaultdict(dict)
    for slice_index, (dataset_index, frame) in enumerate(series.slice_sources):
        frames[dataset_index][frame] = slice_index
    return frames


def _frame_stack(
    series: Series, volume: np.ndarray, dataset_index: int, frames: dict[int, int]
) -> tuple[np.ndarray, list[int] | None]:
    """(frames, rows, cols) to write for one dataset, and the frame indices kept."""
    tiles = series.mosaic_tiles[dataset_index] if series.mosaic_tiles else 0
    if tiles:
        ds = series.datasets[dataset_index]
        layout = mosaic_layout(int(ds.Rows), int(ds.Columns), tiles)
        if layout is None:  # the reader only splits when the layout fits
            source = series.source_files[dataset_index]
            raise FedcodecError(f"mosaic of {source} no longer fits its header")
        tile_images = {k: volume[i] for k, i in frames.items()}
        return assemble_mosaic(tile_images, layout, volume.dtype)[None], None
    kept = sorted(frames)
    return np.stack([volume[frames[f]] for f in kept]), kept


def _swap_binary_values(ds: pydicom.Dataset) -> None:
    """Byte-swap OW/OF/OL/OD/OV values of a big-endian source before writing little-endian."""
    for element in ds.iterall():
        width = _SWAP_WIDTH.get(element.VR)
        value = element.value
        if width and isinstance(value, bytes | bytearray) and len(value) % width == 0:
            element.value = np.frombuffer(value, f">u{width}").astype(f"<u{width}").tobytes()


def _encode(syntax: OutputSyntax, frames: np.ndarray, series: Series) -> EncodedPixels:
    if syntax.codec is not None:
        return codec_pixel_data(
            frames,
            syntax.codec,
            series.bits_allocated,
            series.bits_stored,
            series.signed,
            signed_codestream=syntax.name in ("j2k", "htj2k"),
        )
    if syntax.name == "rle":
        return rle_pixel_data(frames, series.bits_allocated, series.bits_stored, series.signed)
    data = native_pixel_data(frames, series.bits_allocated, series.signed)
    return EncodedPixels(data, False, series.bits_stored, len(data))


def _trim_frames(ds: pydicom.Dataset, kept: list[int] | None) -> None:
    """Keep only the written frames in NumberOfFrames and the per-frame functional groups."""
    if kept is None or "NumberOfFrames" not in ds or len(kept) == int(ds.NumberOfFrames):
        return
    replace_element(ds, "NumberOfFrames", len(kept))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame:
        items = [copy.deepcopy(per_frame[i]) for i in kept if i < len(per_frame)]
        replace_element(ds, "PerFrameFunctionalGroupsSequence", Sequence(items))


def _output_names(series: Series) -> list[str]:
    names, used = [], set()
    for path in series.source_files:
        name, n = path.name, 1
        while name in used:
            n += 1
            name = f"{path.stem}_{n}{path.suffix}"
        used.add(name)
        names.append(name)
    return names


def _uncompressed_bytes(frames: np.ndarray, bits_allocated: int) -> int:
    return frames.size * bits_allocated // 8


def write_series(
    series: Series,
    out_dir: Path,
    *,
    volume: np.ndarray | None = None,
    transfer_syntax: str = "explicit",
    lossy: LossyInfo | None = None,
    new_uids: bool | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write ``series`` (or ``volume`` in its place) to ``out_dir``; return the files written.

    ``transfer_syntax`` is a short name from :mod:`fedcodec.shared.dicom.transfer_syntax`
    (``explicit``, ``implicit``, ``deflate``, ``rle``, ``jpegls[:tau=N]``, ``j2k[:ratio=R]``,
    ``htj2k[:ratio=R]``). A ``volume`` that differs from ``series.volume`` is a reconstruction
    and must come with ``lossy`` describing the lossy step that produced it. ``new_uids``
    defaults to True exactly when the output is lossy; lossy output with ``new_uids=False`` is
    refused, because PS3.3 requires a new instance for lossy-compressed pixels. Output files are
    named like their sources; existing files of those names in ``out_dir`` are replaced.
    """
    out_dir = Path(out_dir)
    if not series.datasets or len(series.slice_sources) != series.shape[0]:
        raise FedcodecError(
            f"series {series.key} has no source headers to write (read it with read_series)"
        )
    syntax = output_syntax(transfer_syntax)
    values = _checked_volume(series, volume)
    if volume is not None and lossy is None and not np.array_equal(values, series.volume):
        raise FedcodecError(
            "replacement volume differs from the series' stored values; pass lossy=LossyInfo(...) "
            "describing the lossy step that produced it"
        )
    lossy_output = lossy is not None or syntax.lossy_method is not None
    if new_uids is None:
        new_uids = lossy_output
    if lossy_output and not new_uids:
        raise FedcodecError("lossy output needs new UIDs (PS3.3 C.7.6.1.1.5); drop new_uids=False")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise FedcodecError(f"cannot create output folder {out_dir}: {reason}") from None
    sources = {p.resolve() for p in series.source_files}
    targets = [out_dir / name for name in _output_names(series)]
    clash = next((t for t in targets if t.resolve() in sources), None)
    if clash is not None:
        raise FedcodecError(f"refusing to overwrite source file {clash}")

    series_uid = generate_uid() if new_uids else None
    frames_of = _frames_by_dataset(series)
    encoded: list[tuple[Path, bytes]] = []
    indices = tqdm(sorted(frames_of), desc="Writing DICOM", unit="file", disable=not progress)
    for index in indices:  # encode everything first: a codec or header error writes nothing
        ds = _output_dataset(series, values, index, frames_of[index], syntax, lossy, series_uid)
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
        encoded.append((targets[index], buffer.getvalue()))
    existed = {target for target, _ in encoded if target.exists()}
    written: list[Path] = []
    try:
        for target, data in encoded:
            write_atomic(target, data)
            written.append(target)
    except OSError as exc:
        for target in written:
            if target not in existed:
                target.unlink(missing_ok=True)
        raise FedcodecError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    return written


def _output_dataset(
    series: Series,
    values: np.ndarray,
    index: int,
    frames: dict[int, int],
    syntax: OutputSyntax,
    lossy: LossyInfo | None,
    series_uid: str | None,
) -> pydicom.Dataset:
    source = series.datasets[index]
    little_endian = source_syntax(source).is_little_endian
    ds = shallow_header_copy(source) if little_endian else copy.deepcopy(source)
    if not little_endian:
        _swap_binary_values(ds)
    stack, kept = _frame_stack(series, values, index, frames)
    _trim_frames(ds, kept)
    pixels = _encode(syntax, stack, series)

    replace_element(ds, "BitsAllocated", series.bits_allocated)
    replace_element(ds, "BitsStored", pixels.bits_stored)
    replace_element(ds, "HighBit", pixels.bits_stored - 1)
    replace_element(ds, "PixelRepresentation", int(series.signed))
    vr = "OB" if pixels.encapsulated or series.bits_allocated == 8 else "OW"
    replace_element(ds, "PixelData", pixels.data, vr)
    if pixels.encapsulated:
        ds["PixelData"].is_undefined_length = True
    if values is not series.volume:
        for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if keyword in ds:
                del ds[keyword]

    steps = list(filter(None, [lossy]))
    if syntax.lossy_method is not None:
        ratio = _uncompressed_bytes(stack, series.bits_allocated) / max(pixels.compressed_bytes, 1)
        method = syntax.lossy_method
        note = f"lossy compression {method} ({syntax.spec} via fedcodec), {ratio:.2f}:1"
        steps.append(LossyInfo(method, ratio, note))
    if steps:
        original = (str(source.get("SOPClassUID", "")), str(source.get("SOPInstanceUID", "")))
        mark_lossy(ds, steps, original)
    if series_uid is not None:
        replace_element(ds, "SOPInstanceUID", generate_uid())
        replace_element(ds, "SeriesInstanceUID", series_uid)

    meta = FileMetaDataset(copy.deepcopy(getattr(source, "file_meta", None) or FileMetaDataset()))
    meta.TransferSyntaxUID = syntax.uid
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID") or meta.get(
        "MediaStorageSOPInstanceUID"
    )
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "FEDCODEC"
    if "FileMetaInformationGroupLength" in meta:
        del meta.FileMetaInformationGroupLength
    ds.file_meta = meta
    return ds
