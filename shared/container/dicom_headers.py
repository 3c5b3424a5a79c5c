"""A series' DICOM headers as one byte blob, so every tag survives bit for bit.

Each dataset (pixel data removed) is written as a DICOM Part-10 file in memory exactly as it was
read (``enforce_file_format=False``: same transfer syntax, same preamble and file meta, private tags
and sequences untouched). The blob is ``u32 length + file bytes`` per dataset, optionally
zstd-compressed as a whole: the headers of one series repeat almost everything, so a 17 KB GE
header costs well under 1 KB each. Unpacking bounds the decompressed size by the length the header
declares, so a crafted blob cannot balloon.
"""

from __future__ import annotations

import copy
import io
import struct

import imagecodecs
import pydicom

from fedcodec.shared.container.digests import bytes_sha256, require_digest
from fedcodec.shared.errors import CorruptDataError

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
RECORD_LENGTH = struct.Struct("<I")
ZSTD_LEVEL = 12
MAX_RAW_LENGTH = 512 * 1024 * 1024
MAX_RAW_PER_DATASET = 16 * 1024 * 1024


def dataset_to_bytes(dataset: pydicom.Dataset) -> bytes:
    """The dataset as a Part-10 file, byte for byte as read; pixel data is dropped if present."""
    if any(k in dataset for k in PIXEL_KEYWORDS):
        dataset = copy.copy(dataset)
        for keyword in PIXEL_KEYWORDS:
            if keyword in dataset:
                delattr(dataset, keyword)
    buffer = io.BytesIO()
    try:
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=False)
    except ValueError:
        # A dataset built in memory has no transfer syntax to write "like the original".
        buffer = io.BytesIO()
        pydicom.dcmwrite(
            buffer, dataset, implicit_vr=False, little_endian=True, enforce_file_format=False
        )
    return buffer.getvalue()


def dataset_from_bytes(data: bytes, where: str) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on crafted input
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CorruptDataError(f"corrupt DICOM header in {where}: {reason}") from None


def pack_datasets(datasets: list[pydicom.Dataset], compression: str = "zstd") -> tuple[bytes, int]:
    """``(blob, raw_length)``: the records, compressed as ``compression`` says."""
    blob, raw_length, _ = pack_datasets_with_digest(datasets, compression)
    return blob, raw_length


def pack_datasets_with_digest(
    datasets: list[pydicom.Dataset], compression: str = "zstd"
) -> tuple[bytes, int, str]:
    """``(blob, raw_length, sha256 of the uncompressed records)``."""
    records = []
    for index, dataset in enumerate(datasets):
        try:
            record = dataset_to_bytes(dataset)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on malformed values
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise CorruptDataError(
                f"DICOM header {index} of series {str(dataset.get('SeriesInstanceUID', '?'))!r} "
                f"cannot be stored: {reason}"
            ) from None
        records.append(RECORD_LENGTH.pack(len(record)) + record)
    raw = b"".join(records)
    if compression == "zstd":
        return imagecodecs.zstd_encode(raw, level=ZSTD_LEVEL), len(raw), bytes_sha256(raw)
    if compression == "none":
        return raw, len(raw), bytes_sha256(raw)
    raise ValueError(f"unknown header compression {compression!r}")


def unpack_datasets(
    blob: bytes, compression: str, raw_length: int, count: int, where: str,
    sha256: str | None = None,
) -> list[pydicom.Dataset]:
    """Inverse of :func:`pack_datasets`, checking every length against what remains."""
    if raw_length > min(MAX_RAW_LENGTH, MAX_RAW_PER_DATASET * max(count, 1)):
        raise CorruptDataError(f"corrupt header: {where} declares {raw_length} bytes of headers")
    if compression == "zstd":
        try:
            raw = imagecodecs.zstd_decode(blob, out=raw_length) if raw_length else b""
        except (imagecodecs.ZstdError, ValueError, TypeError) as exc:
            raise CorruptDataError(f"corrupt DICOM headers in {where}: zstd: {exc}") from None
    else:
        raw = blob
    if len(raw) != raw_length:
        raise CorruptDataError(
            f"corrupt DICOM headers in {where}: {len(raw)} bytes, header says {raw_length}"
        )
    require_digest(sha256, bytes_sha256(raw), f"the DICOM headers of {where}")
    datasets = []
    position = 0
    for index in range(count):
        if position + RECORD_LENGTH.size > len(raw):
            raise CorruptDataError(f"corrupt DICOM headers in {where}: record {index} truncated")
        (length,) = RECORD_LENGTH.unpack_from(raw, position)
        position += RECORD_LENGTH.size
        if length > len(raw) - position:
            raise CorruptDataError(f"corrupt DICOM headers in {where}: record {index} truncated")
        datasets.append(dataset_from_bytes(raw[position : position + length], where))
        position += length
    if position != len(raw):
        raise CorruptDataError(
            f"corrupt DICOM headers in {where}: {len(raw) - position} stray bytes after "
            f"{count} datasets"
        )
    return datasets
