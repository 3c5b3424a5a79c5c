"""Byte layout of one ``neural-lossy`` stream (one slice), checked before anything is decoded.

::

    offset size  field
    0      4     magic b"FLL1"
    4      1     kind: 0 lossy, 1 hybrid (lossy base layer + bounded refinement)
    5      1     quality (lossy: rate point 1..8) or tau (hybrid)
    6      1     bits (real bit depth, 1..16)
    7      1     flags: bit 0 = uint16 samples (else uint8)
    8      2     rows (uint16 LE)
    10     2     cols
    12     4     lo   (lossy: slice minimum; hybrid: CRC-32 of the decoded base layer)
    16     4     hi   (lossy: slice maximum; hybrid: 0)
    20     4     model id (first 4 bytes of the weights' SHA-256)
    24     1     number of sections n (1 lossy: rANS words; 2 hybrid: J2K base, rANS words)
    25     4*n   section lengths in bytes (uint32 LE)
    ...          sections
    end-4  4     CRC-32 of every byte before it

The trailing CRC makes a flipped or truncated byte a :class:`CorruptDataError` before any
decoding starts (the range coder alone would happily decode garbage into a plausible image).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from fedcodec.shared.errors import CorruptDataError

MAGIC = b"FLL1"
KIND_LOSSY = 0
KIND_HYBRID = 1
MAX_SIDE = 2048
"""Largest side accepted (float transforms of a 2048x2048 slice take ~0.3 GB of activations)."""
_FIXED = struct.Struct("<4sBBBBHHII4sB")


@dataclass(frozen=True)
class StreamHeader:
    kind: int
    quality: int
    bits: int
    uint16: bool
    rows: int
    cols: int
    lo: int
    hi: int
    model_id: bytes


def pack(header: StreamHeader, sections: list[bytes]) -> bytes:
    body = _FIXED.pack(MAGIC, header.kind, header.quality, header.bits, int(header.uint16),
                       header.rows, header.cols, header.lo, header.hi, header.model_id,
                       len(sections))
    body += b"".join(struct.pack("<I", len(s)) for s in sections) + b"".join(sections)
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[StreamHeader, list[bytes]]:
    """Parse and verify; CorruptDataError names what is wrong."""
    data = bytes(data)
    if len(data) < _FIXED.size + 4:
        raise CorruptDataError(f"neural-lossy stream is truncated ({len(data)} bytes)")
    if data[:4] != MAGIC:
        raise CorruptDataError("not a neural-lossy stream (bad magic)")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise CorruptDataError("neural-lossy stream is corrupt or truncated (CRC mismatch)")
    _, kind, quality, bits, flags, rows, cols, lo, hi, model_id, n = _FIXED.unpack_from(data)
    if kind not in (KIND_LOSSY, KIND_HYBRID) or n != (1 if kind == KIND_LOSSY else 2):
        raise CorruptDataError(f"neural-lossy stream: unknown kind {kind} / {n} sections")
    if not 1 <= bits <= 16 or flags > 1 or (bits > 8 and not flags):
        raise CorruptDataError(f"neural-lossy stream: bad bit depth {bits} / flags {flags}")
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise CorruptDataError(f"neural-lossy stream: bad size {rows}x{cols}")
    pos = _FIXED.size
    if len(data) < pos + 4 * n + 4:
        raise CorruptDataError("neural-lossy stream is truncated (section table)")
    lengths = struct.unpack_from(f"<{n}I", data, pos)
    pos += 4 * n
    if pos + sum(lengths) + 4 != len(data):
        raise CorruptDataError("neural-lossy stream: section lengths do not match the size")
    sections = []
    for length in lengths:
        sections.append(data[pos : pos + length])
        pos += length
    header = StreamHeader(kind, quality, bits, bool(flags), rows, cols, lo, hi, model_id)
    return header, sections
