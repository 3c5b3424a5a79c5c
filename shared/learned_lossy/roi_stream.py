"""Byte layout of one ROI stream (one slice), checked before anything is decoded.

::

    offset size  field
    0      4     magic b"FRO1"
    4      1     tau inside the ROI (0 = lossless .. 15)
    5      1     outside: 255 = keeps the lossy base layer (no refinement), else its tau (0..15)
    6      1     bits (real bit depth, 1..16)
    7      1     flags: bit 0 = uint16 samples (else uint8)
    8      2     rows (uint16 LE)
    10     2     cols
    12     4     CRC-32 of the decoded base layer (uint16 LE samples; 0 without a base)
    16     4     CRC-32 of the reconstruction (uint16 LE samples)
    20     4     model id (first 4 bytes of the residual weights' SHA-256)
    24     1     mask kind: 0 empty, 1 whole slice, 2 box, 3 bitmap
    25     12    section lengths (uint32 LE): mask, base, refinement
    37     ...   mask section: box = x0, y0, x1, y1 (uint16 LE, half-open);
                 bitmap = zlib(numpy.packbits(mask), row-major); empty / whole: nothing
    ...          base section: JPEG 2000 codestream (reversible 5/3, truncated), may be empty
    ...          refinement section: rANS words (uint32 LE) of the ROI residual coder
    end-4  4     CRC-32 of every byte before it

The trailing CRC catches a flipped or cut byte before decoding; the reconstruction CRC catches a
decoder that would compute anything different from the encoder (another machine, another build).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from fedcodec.shared.errors import CorruptDataError

MAGIC = b"FRO1"
OUTSIDE_BASE = 255
MAX_TAU = 15
MAX_SIDE = 2048
MASK_EMPTY, MASK_FULL, MASK_BOX, MASK_BITMAP = 0, 1, 2, 3
_FIXED = struct.Struct("<4sBBBBHHII4sB3I")


@dataclass(frozen=True)
class RoiHeader:
    tau: int
    outside: int
    """tau outside the ROI, or OUTSIDE_BASE (the base layer's values)."""
    bits: int
    uint16: bool
    rows: int
    cols: int
    base_crc: int
    recon_crc: int
    model_id: bytes
    mask_kind: int


def mask_section(mask: np.ndarray) -> tuple[int, bytes]:
    """The most compact coding of a bool mask: empty, whole, its bounding box, or a bitmap."""
    if not mask.any():
        return MASK_EMPTY, b""
    if mask.all():
        return MASK_FULL, b""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if mask[y0:y1, x0:x1].all():
        return MASK_BOX, struct.pack("<4H", x0, y0, x1, y1)
    return MASK_BITMAP, zlib.compress(np.packbits(mask, axis=None).tobytes(), 9)


def mask_from_section(kind: int, data: bytes, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = shape
    if kind == MASK_EMPTY or kind == MASK_FULL:
        if data:
            raise CorruptDataError("ROI stream: empty/whole mask with mask bytes")
        return np.full(shape, kind == MASK_FULL, dtype=bool)
    if kind == MASK_BOX:
        if len(data) != 8:
            raise CorruptDataError("ROI stream: bad box mask")
        x0, y0, x1, y1 = struct.unpack("<4H", data)
        if not (x0 < x1 <= cols and y0 < y1 <= rows):
            raise CorruptDataError(f"ROI stream: box {x0},{y0},{x1},{y1} outside {rows}x{cols}")
        mask = np.zeros(shape, dtype=bool)
        mask[y0:y1, x0:x1] = True
        return mask
    if kind != MASK_BITMAP:
        raise CorruptDataError(f"ROI stream: unknown mask kind {kind}")
    try:
        packed = zlib.decompressobj().decompress(data, (rows * cols + 7) // 8 + 1)
    except zlib.error:
        raise CorruptDataError("ROI stream: mask bitmap does not inflate") from None
    if len(packed) != (rows * cols + 7) // 8:
        raise CorruptDataError("ROI stream: mask bitmap has the wrong size")
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=rows * cols)
    return bits.reshape(shape).astype(bool)


def pack(header: RoiHeader, mask: bytes, base: bytes, refinement: bytes) -> bytes:
    body = _FIXED.pack(MAGIC, header.tau, header.outside, header.bits, int(header.uint16),
                       header.rows, header.cols, header.base_crc, header.recon_crc,
                       header.model_id, header.mask_kind, len(mask), len(base), len(refinement))
    body += mask + base + refinement
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[RoiHeader, bytes, bytes, bytes]:
    """Parse and verify; CorruptDataError names what is wrong."""
    data = bytes(data)
    if len(data) < _FIXED.size + 4:
        raise CorruptDataError(f"ROI stream is truncated ({len(data)} bytes)")
    if data[:4] != MAGIC:
        raise CorruptDataError("not an ROI stream (bad magic)")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise CorruptDataError("ROI stream is corrupt or truncated (CRC mismatch)")
    (_, tau, outside, bits, flags, rows, cols, base_crc, recon_crc, model_id, kind,
     n_mask, n_base, n_ref) = _FIXED.unpack_from(data)
    if tau > MAX_TAU or (outside > MAX_TAU and outside != OUTSIDE_BASE):
        raise CorruptDataError(f"ROI stream: bad tau {tau} / outside {outside}")
    if not 1 <= bits <= 16 or flags > 1 or (bits > 8 and not flags):
        raise CorruptDataError(f"ROI stream: bad bit depth {bits} / flags {flags}")
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise CorruptDataError(f"ROI stream: bad size {rows}x{cols}")
    pos = _FIXED.size
    if pos + n_mask + n_base + n_ref + 4 != len(data) or n_ref % 4:
        raise CorruptDataError("ROI stream: section lengths do not match the size")
    mask = data[pos:pos + n_mask]
    base = data[pos + n_mask:pos + n_mask + n_base]
    refinement = data[pos + n_mask + n_base:pos + n_mask + n_base + n_ref]
    header = RoiHeader(tau, outside, bits, bool(flags), rows, cols, base_crc, recon_crc,
                       model_id, kind)
    return header, mask, base, refinement
