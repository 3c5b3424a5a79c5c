"""Pixel data to *stored values*: the integers the scanner meant, whatever the file encoding.

DICOM readers "may not assume anything about the contents of unused bits" (PS3.5 8.1.1): unsigned
values are masked to Bits Stored, signed values are sign-extended from bit ``BitsStored - 1``
(12-bit signed data carry the sign in bit 11, not 15). Native (uncompressed) pixel data are
decoded here with numpy, in the file's byte order; compressed transfer syntaxes go through
pydicom's decoders (pylibjpeg, pyjpegls) and the same masking is then applied to the result, so
a stray encoder that left high bits set cannot leak into the volume.
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass, replace

import numpy as np
import pydicom
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from fedcodec.shared.errors import CorruptDataError, DataWarning, FedcodecError


class UnsupportedImageError(FedcodecError):
    """A valid DICOM image that fedcodec does not handle (colour, 32-bit, float)."""


@dataclass(frozen=True)
class PixelFormat:
    """The Image Pixel module attributes that decide how to read the values."""

    rows: int
    columns: int
    frames: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    signed: bool

    @property
    def dtype(self) -> np.dtype:
        """dtype of the stored values: int16 when signed, else uint8/uint16 by Bits Allocated."""
        if self.signed:
            return np.dtype(np.int16)
        return np.dtype(np.uint8 if self.bits_allocated == 8 else np.uint16)


def pixel_format(ds: pydicom.Dataset) -> PixelFormat:
    """Read and check the pixel attributes; UnsupportedImageError for what fedcodec cannot hold."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedImageError(f"float pixel data (SOP class {_sop_class_name(ds)})")
        if "SOPClassUID" not in ds:
            raise UnsupportedImageError("no pixel data and no SOP Class UID (truncated header?)")
        raise UnsupportedImageError(f"no pixel data (SOP class {_sop_class_name(ds)})")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise UnsupportedImageError(f"colour image ({samples} samples per pixel) is not supported")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        allocated = int(ds.BitsAllocated)
        stored = int(ds.get("BitsStored") or allocated)
        high = int(ds.get("HighBit") if ds.get("HighBit") is not None else stored - 1)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        frames = int(ds.get("NumberOfFrames") or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise CorruptDataError(f"bad image pixel attributes: {_one_line(exc)}") from None
    if allocated not in (8, 16):
        raise UnsupportedImageError(f"Bits Allocated {allocated} is not supported (only 8 and 16)")
    if not 1 <= stored <= allocated or not stored - 1 <= high < allocated:
        raise CorruptDataError(
            f"inconsistent Bits Allocated/Stored/High Bit {allocated}/{stored}/{high}"
        )
    if rows < 1 or columns < 1 or frames < 1:
        raise CorruptDataError(f"empty image ({rows}x{columns}, {frames} frames)")
    return PixelFormat(rows, columns, frames, allocated, stored, high, signed)


def to_stored(pattern: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """Bit patterns (any integer dtype) -> stored values: align High Bit, mask, sign-extend."""
    bits = np.asarray(pattern).astype(np.int64, copy=False)
    if fmt.bits_allocated == 16:
        bits = bits & 0xFFFF  # int16 input -> its two's-complement pattern
    else:
        bits = bits & 0xFF
    shift = fmt.high_bit + 1 - fmt.bits_stored
    values = (bits >> shift) & ((1 << fmt.bits_stored) - 1)
    if fmt.signed:
        sign = 1 << (fmt.bits_stored - 1)
        values = (values ^ sign) - sign
    return values.astype(fmt.dtype)


def stored_pattern(values: np.ndarray, bits_stored: int) -> np.ndarray:
    """Stored values -> unsigned two's-complement pattern masked to ``bits_stored`` bits.

    This is what a DICOM JPEG-LS/JPEG 2000 decoder expects inside a codestream of precision
    ``bits_stored`` for signed data (Pixel Representation 1): it sign-extends from the top bit.
    """
    dtype = np.uint8 if bits_stored <= 8 else np.uint16
    return (np.asarray(values).astype(np.int64) & ((1 << bits_stored) - 1)).astype(dtype)


def stored_frames(ds: pydicom.Dataset) -> np.ndarray:
    """All frames of ``ds`` as a (frames, rows, cols) array of stored values."""
    fmt = pixel_format(ds)
    syntax = transfer_syntax(ds)
    if syntax.is_compressed:
        try:
            decoded = ds.pixel_array
        except Exception as exc:  # decoders raise anything from ValueError to RuntimeError
            message = f"cannot decode {syntax.name} pixel data: {_one_line(exc)}"
            raise CorruptDataError(message) from None
        decoded = np.asarray(decoded).reshape(fmt.frames, fmt.rows, fmt.columns)
        # decoders return values, not the native bit layout: High Bit no longer applies
        return to_stored(decoded, replace(fmt, high_bit=fmt.bits_stored - 1))
    raw = ds.PixelData
    itemsize = fmt.bits_allocated // 8
    expected = fmt.frames * fmt.rows * fmt.columns * itemsize
    if len(raw) < expected:
        raise CorruptDataError(f"pixel data truncated: {len(raw)} of {expected} bytes")
    order = "<" if syntax.is_little_endian else ">"
    pattern = np.frombuffer(raw, dtype=f"{order}u{itemsize}", count=expected // itemsize)
    _warn_on_unused_bits(pattern, fmt)
    return to_stored(pattern.reshape(fmt.frames, fmt.rows, fmt.columns), fmt)


def _warn_on_unused_bits(pattern: np.ndarray, fmt: PixelFormat) -> None:
    """Bits outside Bits Stored are not pixel values (old files may hold overlay planes there);
    fedcodec keeps the stored values, so a lossless archive returns those bits cleared. Say so."""
    kept = ((1 << fmt.bits_stored) - 1) << (fmt.high_bit + 1 - fmt.bits_stored)
    if np.any(pattern & np.asarray(~kept & ((1 << fmt.bits_allocated) - 1), pattern.dtype)):
        warnings.warn("some pixels carry bits outside Bits Stored (embedded overlay planes?); "
                      "fedcodec keeps the stored values, so decompressed files have those bits "
                      "cleared", DataWarning, stacklevel=2)


def transfer_syntax(ds: pydicom.Dataset) -> UID:
    """The dataset's transfer syntax; for files without file meta, the encoding pydicom found."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(str(uid))
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit is None or little is None:
        return ImplicitVRLittleEndian
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _sop_class_name(ds: pydicom.Dataset) -> str:
    uid = ds.get("SOPClassUID")
    return UID(str(uid)).name if uid else "unknown"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")
