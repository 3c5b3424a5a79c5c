"""The byte layout of one neural-codec slice stream.

::

    byte 0      0xA1 (format "neural v1")
    byte 1      flags: bits 0-1 number of reference slices (0..2), bit 2 near-lossless,
                bit 3 uint16 output (else uint8); bits 4-7 zero
    byte 2      bit depth (1..16)
    varint      rows, then cols (LEB128, >= 1)
    varint      tau (only if near-lossless; >= 1)
    varint*     per reference: how many slices back it is (>= 1)
    4 bytes     model id (SHA-256 prefix of the weights' integer arrays)
    rest        rANS words, uint32 little-endian (constriction AnsCoder.get_compressed)

Stream *i* of a volume depends on the streams its reference offsets name (i-1, i-period); a
stream with no references decodes alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedcodec.shared.errors import CorruptDataError

MAGIC = 0xA1
MAX_SIDE = 1 << 20


@dataclass(frozen=True)
class StreamHeader:
    rows: int
    cols: int
    bits: int
    tau: int
    uint16: bool
    ref_offsets: tuple[int, ...]
    model_id: bytes


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise CorruptDataError("neural stream: truncated or malformed header")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def pack(header: StreamHeader, words: np.ndarray) -> bytes:
    flags = len(header.ref_offsets) | (4 if header.tau else 0) | (8 if header.uint16 else 0)
    parts = [bytes([MAGIC, flags, header.bits]), _varint(header.rows), _varint(header.cols)]
    if header.tau:
        parts.append(_varint(header.tau))
    parts.extend(_varint(off) for off in header.ref_offsets)
    parts.append(header.model_id)
    parts.append(np.asarray(words, dtype="<u4").tobytes())
    return b"".join(parts)


def unpack(data: bytes) -> tuple[StreamHeader, np.ndarray]:
    """Parse a stream; any inconsistency is a CorruptDataError naming what is wrong."""
    data = bytes(data)
    if len(data) < 3 or data[0] != MAGIC:
        raise CorruptDataError("not a neural-codec stream (bad magic byte)")
    flags, bits = data[1], data[2]
    if flags & 0xF0 or (flags & 3) > 2:
        raise CorruptDataError("neural stream: unknown header flags")
    if not 1 <= bits <= 16:
        raise CorruptDataError(f"neural stream: bit depth {bits} outside 1..16")
    rows, pos = _read_varint(data, 3)
    cols, pos = _read_varint(data, pos)
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise CorruptDataError(f"neural stream: bad image size {rows}x{cols}")
    tau = 0
    if flags & 4:
        tau, pos = _read_varint(data, pos)
        if not 1 <= tau < (1 << bits):
            raise CorruptDataError(f"neural stream: bad tau {tau}")
    offsets = []
    for _ in range(flags & 3):
        off, pos = _read_varint(data, pos)
        if off < 1:
            raise CorruptDataError("neural stream: bad reference offset 0")
        offsets.append(off)
    model_id = data[pos : pos + 4]
    payload = data[pos + 4 :]
    if len(model_id) != 4 or len(payload) % 4:
        raise CorruptDataError("neural stream: truncated payload")
    uint16 = bool(flags & 8)
    if not uint16 and bits > 8:
        raise CorruptDataError("neural stream: uint8 output with more than 8 bits")
    header = StreamHeader(rows, cols, bits, tau, uint16, tuple(offsets), model_id)
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)
