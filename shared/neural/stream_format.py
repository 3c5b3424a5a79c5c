"""The byte layout of one neural-codec slice stream.

::

    byte 0      0xA1 (format "neural v1"), or 0xA2: the slice *is* its first reference
                (within tau), no payload follows the CRC, or 0xA4: as 0xA1, bounded error
                reconstructed inside the bin (``bin_centroid``; near-lossless only)
    byte 1      bits 0-3: bit depth - 1 (1..16 bits); bits 4-5: number of reference slices
                (0..2); bit 6: near-lossless; bit 7: uint16 output (else uint8)
    varint      rows, then cols (LEB128, >= 1)
    varint      tau (only if near-lossless; >= 1)
    varint*     per reference: how many slices back it is (>= 1)
    2 bytes     model id (SHA-256 prefix of the weights' integer arrays)
    4 bytes     CRC-32 of the reconstructed pixels (little-endian, as stored in the output dtype)
    rest        rANS words, uint32 little-endian (constriction AnsCoder.get_compressed)

The CRC is what makes corruption detectable: a damaged rANS payload still decodes to *some*
image (checked: flipped bits deep in the stack, or a payload cut to one word, pass the coder's
own end-state check), so the decoder compares the CRC of what it produced.

Stream *i* of a volume depends on the streams its reference offsets name (i-1, i-period); a
stream with no references decodes alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedcodec.shared.errors import CorruptDataError

MAGIC = 0xA1
COPY_MAGIC = 0xA2
CENTROID_MAGIC = 0xA4
MAX_SIDE = 1 << 20
MODEL_ID_BYTES = 2


@dataclass(frozen=True)
class StreamHeader:
    rows: int
    cols: int
    bits: int
    tau: int
    uint16: bool
    ref_offsets: tuple[int, ...]
    model_id: bytes
    crc32: int
    copy: bool = False
    """The slice equals (within tau) its first reference; the stream has no payload."""
    centroid: bool = False
    """Reconstruction inside the bin towards the prediction (``bin_centroid``); tau >= 1."""


def write_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
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
    flags = ((header.bits - 1) | (len(header.ref_offsets) << 4) | (0x40 if header.tau else 0)
             | (0x80 if header.uint16 else 0))
    if header.copy and not header.ref_offsets:
        raise ValueError("a copied slice needs a reference")
    if header.centroid and not header.tau:
        raise ValueError("centroid reconstruction needs tau >= 1")
    magic = COPY_MAGIC if header.copy else CENTROID_MAGIC if header.centroid else MAGIC
    parts = [bytes([magic, flags]), write_varint(header.rows), write_varint(header.cols)]
    if header.tau:
        parts.append(write_varint(header.tau))
    parts.extend(write_varint(off) for off in header.ref_offsets)
    parts.append(header.model_id[:MODEL_ID_BYTES])
    parts.append(int(header.crc32).to_bytes(4, "little"))
    parts.append(np.asarray(words, dtype="<u4").tobytes())
    return b"".join(parts)


def unpack(data: bytes) -> tuple[StreamHeader, np.ndarray]:
    """Parse a stream; any inconsistency is a CorruptDataError naming what is wrong."""
    data = bytes(data)
    if len(data) < 2 or data[0] not in (MAGIC, COPY_MAGIC, CENTROID_MAGIC):
        raise CorruptDataError("not a neural-codec stream (bad magic byte)")
    copy = data[0] == COPY_MAGIC
    centroid = data[0] == CENTROID_MAGIC
    flags = data[1]
    bits = (flags & 0x0F) + 1
    n_refs = (flags >> 4) & 3
    if n_refs > 2:
        raise CorruptDataError("neural stream: bad number of reference slices")
    rows, pos = read_varint(data, 2)
    cols, pos = read_varint(data, pos)
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise CorruptDataError(f"neural stream: bad image size {rows}x{cols}")
    tau = 0
    if flags & 0x40:
        tau, pos = read_varint(data, pos)
        if not 1 <= tau < (1 << bits):
            raise CorruptDataError(f"neural stream: bad tau {tau}")
    offsets = []
    for _ in range(n_refs):
        off, pos = read_varint(data, pos)
        if off < 1:
            raise CorruptDataError("neural stream: bad reference offset 0")
        offsets.append(off)
    model_id = data[pos : pos + MODEL_ID_BYTES]
    crc = data[pos + MODEL_ID_BYTES : pos + MODEL_ID_BYTES + 4]
    payload = data[pos + MODEL_ID_BYTES + 4 :]
    if len(crc) != 4 or len(payload) % 4:
        raise CorruptDataError("neural stream: truncated payload")
    if copy and (payload or not offsets):
        raise CorruptDataError("neural stream: malformed copy stream")
    uint16 = bool(flags & 0x80)
    if not uint16 and bits > 8:
        raise CorruptDataError("neural stream: uint8 output with more than 8 bits")
    if centroid and not tau:
        raise CorruptDataError("neural stream: centroid reconstruction without tau")
    header = StreamHeader(rows, cols, bits, tau, uint16, tuple(offsets), model_id,
                          int.from_bytes(crc, "little"), copy, centroid)
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)
