"""The byte layout of one neural-codec slice stream.

::

    byte 0      0xA1 (format "neural v1"), or 0xA2: the slice *is* its first reference
                (within tau), no payload follows the CRC, or 0xA4 ("neural v2", adapted): as
                0xA1 with a scale-offset byte after the reference offsets, or 0xA6: as 0xA4
                (its scale-offset byte may be 0), bounded error reconstructed inside the bin
                (``bin_centroid``; near-lossless only), or 0xA7: a progressive refinement
                layer (``coarse_window``): as 0xA1 with the coarse layer's bound after the
                reference offsets; the first reference is that coarse layer's slice, or 0xA9
                (an extended refinement layer): as 0xA7 followed by a flags byte as 0xA8's
                (bits 2-5 only) and what they announce, or 0xA8
                (an extended slice): as 0xA4 (its scale-offset byte may be 0) followed by a
                flags byte and what the flags announce: a value range the residual
                distributions are truncated to (``truncation``) and per-group corrections of
                the predicted mean (``mean_fit``), or 0xAA (an extended slice with level
                bounds): as 0xA8 (its flags byte may be 0 or 1) with the level bounds last
    byte 1      bits 0-3: bit depth - 1 (1..16 bits); bits 4-5: number of reference slices
                (0..2); bit 6: near-lossless; bit 7: uint16 output (else uint8)
    varint      rows, then cols (LEB128, >= 1)
    varint      tau (only if near-lossless; >= 1)
    varint*     per reference: how many slices back it is (>= 1)
    varint      (0xA7, 0xA9) 2 * the coarse layer's bound (> tau, >= 1) + 1 if the cells are
                centred on the prediction (else a grid from the window's start)
    1 byte      (0xA4, 0xA6, 0xA7, 0xA8 and 0xA9 only) scale offset + 128: every pixel's scale bin
                moves by this many bins (-24..24; never 0 in 0xA4), chosen by the encoder
    1 byte      (0xA8, 0xA9) flags: bit 0 reconstruction inside the bin (as 0xA6), bit 1 a
                value range follows, bit 2 mean corrections follow, bit 3 group scale
                offsets follow, bit 4 the cells use the model's near-lossless tables for
                this tau (``NeuralWeights.table_bound``; 0xA9: weighing the refinement's
                bins, tau <= ``MAX_CELL_WINDOW_TAU``), chosen per slice by the encoder;
                bit 5 (with bit 2) each corrected group states how many weights it has
                (wide corrections, ``mean_fit.taps``); others 0 (0xA9: bits 0 and 1 too,
                and some bit set)
    varint*2    (0xA8, bit 1) the slice's minimum, then 2**bits - 1 - its maximum
    varint ...  (0xA8/0xA9, bit 2) how many groups are corrected, then for each (in increasing
                order) its number (3 * level + B/C/D), (bit 5 only) how many weights k, and
                one zigzag varint per weight: the weights, in 1/256, of the first k taps
                (without bit 5 the network's neighbours: 12 for B and C, 16 for D)
    varint ...  (0xA8/0xA9, bit 3) how many groups have their own scale offset, then for each (in
                increasing order) its number and a zigzag varint: bins added to the slice's
    varint ...  (0xAA) how many level bounds n (1..MAX_LEVELS), then the bounds of pyramid
                levels 1..n (each 0..tau; coarser levels take the last): tau is level 0's
                bound and the slice's guarantee (``level_bounds``)
    2 bytes     model id (SHA-256 prefix of the weights' integer arrays)
    4 bytes     CRC-32 of the reconstructed pixels (little-endian, as stored in the output dtype)
    rest        rANS words, uint32 little-endian (constriction AnsCoder.get_compressed)

The CRC is what makes corruption detectable: a damaged rANS payload still decodes to *some*
image (checked: flipped bits deep in the stack, or a payload cut to one word, pass the coder's
own end-state check), so the decoder compares the CRC of what it produced.

Classical fallback streams (``fallback.py``) sit in the same place as a slice stream: a bare
JPEG XL / JPEG-LS / JPEG 2000 codestream, recognised by its own signature (first byte 0xFF, or
0x00 for the JPEG XL box). Added in the fallback release; streams written before it are
unchanged and still decode; a build from before it refuses a fallback stream with its
"bad magic byte" error. A first byte 0xA5 or 0xAB-0xAF is a neural format this build does not
know and is refused naming it (a build from before 0xA7 refuses refinement layers that way,
one from before 0xA8 extended slices, one from before 0xA9 refinements weighed with
near-lossless tables, mean corrections or group offsets, one from before 0xAA slices with
level bounds).

Stream *i* of a volume depends on the streams its reference offsets name (i-1, i-period); a
stream with no references decodes alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural.geometry import GROUPS
from fedcodec.shared.neural.mean_fit import MAX_WEIGHT, taps

MAGIC = 0xA1
COPY_MAGIC = 0xA2
ADAPTED_MAGIC = 0xA4
CENTROID_MAGIC = 0xA6
WINDOW_MAGIC = 0xA7
EXTENDED_MAGIC = 0xA8
EXTENDED_WINDOW_MAGIC = 0xA9
LEVELS_MAGIC = 0xAA
MAX_CELL_WINDOW_TAU = 512
"""The largest tau of a 0xA9 refinement (``coarse_window.MAX_CELL_TAU``, which imports it)."""
MAX_SCALE_OFFSET = 24
MAX_SIDE = 1 << 20
MAX_LEVELS = 21
"""Pyramid levels of a MAX_SIDE image (each halves the side, down to one pixel)."""
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
    scale_offset: int = 0
    """Encode-time adaptation (0xA4 and 0xA6 streams): scale bins move by this many bins."""
    centroid: bool = False
    """Reconstruction inside the bin towards the prediction (``bin_centroid``); tau >= 1."""
    window_bound: int = 0
    """A refinement layer (0xA7): the bound of the coarse slice (the first reference) whose
    window every pixel's bin is coded in (``coarse_window``); 0 = an ordinary slice."""
    centred_cells: bool = False
    """A refinement layer's cells are centred on the prediction (else a grid in the window)."""
    bounds: tuple[int, int] | None = None
    """(0xA8) every pixel lies in [lo, hi]: the coder truncates residual distributions to
    that range."""
    corrections: tuple[tuple[int, tuple[int, ...]], ...] = ()
    """(0xA8) (group number, weights) of the groups whose mean is corrected."""
    group_offsets: tuple[tuple[int, int], ...] = ()
    """(0xA8) (group number, bins) added to ``scale_offset`` for those groups."""
    cell_tables: bool = False
    """(0xA8, 0xA9) the cells (0xA9: a refinement's bins) are coded with the model's
    near-lossless tables for this tau (``NeuralWeights.table_bound``), not its lossless
    tables; tau >= 1."""
    level_taus: tuple[int, ...] = ()
    """(0xAA) the bounds of pyramid levels 1, 2, ... (coarser ones take the last), each <= tau."""


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
    if header.scale_offset and (header.copy or abs(header.scale_offset) > MAX_SCALE_OFFSET):
        raise ValueError(f"bad scale offset {header.scale_offset}")
    if header.centroid and (not header.tau or header.copy):
        raise ValueError("centroid reconstruction needs tau >= 1 and a coded slice")
    if header.window_bound and (header.window_bound <= header.tau or header.copy
                                or header.centroid or not header.ref_offsets):
        raise ValueError("a refinement layer needs a coarser bound, a reference, and no copy "
                         "or centroid")
    if header.bounds is not None and (header.copy or header.window_bound
                                      or not 0 <= header.bounds[0] <= header.bounds[1]
                                      < (1 << header.bits)):
        raise ValueError(f"bad bounded range {header.bounds} (coded slices only)")
    extended = (header.bounds is not None or bool(header.corrections)
                or bool(header.group_offsets) or header.cell_tables)
    if header.cell_tables and (not header.tau or header.copy or (
            header.window_bound and header.tau > MAX_CELL_WINDOW_TAU)):
        raise ValueError("near-lossless tables belong to a coded slice with tau >= 1 (a "
                         f"refinement: tau <= {MAX_CELL_WINDOW_TAU})")
    if header.group_offsets:
        _check_group_offsets(header.group_offsets, header.scale_offset, ValueError)
        if header.copy:
            raise ValueError("group scale offsets belong to a coded slice")
    if header.corrections:
        _check_corrections(header.corrections, header.tau, ValueError)
        if header.copy:
            raise ValueError("mean corrections belong to a coded slice")
    if header.level_taus and (header.copy or header.window_bound or not header.tau
                              or len(header.level_taus) > MAX_LEVELS
                              or not 0 <= min(header.level_taus) <= max(header.level_taus)
                              <= header.tau):
        raise ValueError(f"bad level bounds {header.level_taus} (an ordinary slice, each 0..tau)")
    magic = (COPY_MAGIC if header.copy
             else LEVELS_MAGIC if header.level_taus
             else EXTENDED_WINDOW_MAGIC if header.window_bound and extended
             else WINDOW_MAGIC if header.window_bound
             else EXTENDED_MAGIC if extended
             else CENTROID_MAGIC if header.centroid
             else ADAPTED_MAGIC if header.scale_offset else MAGIC)
    parts = [bytes([magic, flags]), write_varint(header.rows), write_varint(header.cols)]
    if header.tau:
        parts.append(write_varint(header.tau))
    parts.extend(write_varint(off) for off in header.ref_offsets)
    if header.centred_cells and not header.window_bound:
        raise ValueError("centred cells belong to a refinement layer")
    if header.window_bound:
        parts.append(write_varint(2 * header.window_bound + header.centred_cells))
    extended = extended or bool(header.level_taus)
    if header.scale_offset or header.centroid or header.window_bound or extended:
        parts.append(bytes([header.scale_offset + 128]))
    counted = any(len(w) != len(GROUPS[i % 3].offsets) for i, w in header.corrections)
    if extended:
        parts.append(bytes([int(header.centroid) | (2 if header.bounds is not None else 0)
                            | (4 if header.corrections else 0)
                            | (8 if header.group_offsets else 0)
                            | (16 if header.cell_tables else 0)
                            | (32 if counted else 0)]))
    if header.bounds is not None:
        parts.append(write_varint(header.bounds[0]))
        parts.append(write_varint((1 << header.bits) - 1 - header.bounds[1]))
    if header.corrections:
        parts.append(write_varint(len(header.corrections)))
        for index, weights in header.corrections:
            parts.append(write_varint(index))
            if counted:
                parts.append(write_varint(len(weights)))
            parts.extend(write_varint(_zigzag(w)) for w in weights)
    if header.group_offsets:
        parts.append(write_varint(len(header.group_offsets)))
        for index, delta in header.group_offsets:
            parts.append(write_varint(index) + write_varint(_zigzag(delta)))
    if header.level_taus:
        parts.append(write_varint(len(header.level_taus)))
        parts.extend(write_varint(t) for t in header.level_taus)
    parts.append(header.model_id[:MODEL_ID_BYTES])
    parts.append(int(header.crc32).to_bytes(4, "little"))
    parts.append(np.asarray(words, dtype="<u4").tobytes())
    return b"".join(parts)


def unpack(data: bytes) -> tuple[StreamHeader, np.ndarray]:
    """Parse a stream; any inconsistency is a CorruptDataError naming what is wrong."""
    data = bytes(data)
    known = (MAGIC, COPY_MAGIC, ADAPTED_MAGIC, CENTROID_MAGIC, WINDOW_MAGIC, EXTENDED_MAGIC,
             EXTENDED_WINDOW_MAGIC, LEVELS_MAGIC)
    if len(data) >= 2 and data[0] not in known and data[0] >> 4 == 0xA:
        raise CorruptDataError(f"neural stream format 0x{data[0]:02X} is not one this build reads "
                               "(it reads 0xA1 slices, 0xA2 copies, 0xA3 tiles, 0xA4 adapted "
                               "slices, 0xA6 bounded-error slices reconstructed inside the bin, "
                               "0xA7 and 0xA9 progressive refinement layers, 0xA8 extended "
                               "slices, 0xAA slices with level bounds and classical fallback "
                               "streams); decode it with the "
                               "fedcodec that wrote it")
    if len(data) < 2 or data[0] not in known:
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
    window_bound = 0
    centred_cells = False
    if data[0] in (WINDOW_MAGIC, EXTENDED_WINDOW_MAGIC):
        window_bound, pos = read_varint(data, pos)
        window_bound, centred_cells = window_bound >> 1, bool(window_bound & 1)
        if not tau < window_bound < (1 << bits) or not offsets:
            raise CorruptDataError(f"neural stream: bad refinement layer (coarse bound "
                                   f"{window_bound}, tau {tau}, {len(offsets)} references)")
    scale_offset = 0
    if data[0] in (ADAPTED_MAGIC, CENTROID_MAGIC, WINDOW_MAGIC, EXTENDED_MAGIC,
                   EXTENDED_WINDOW_MAGIC, LEVELS_MAGIC):
        if pos >= len(data):
            raise CorruptDataError("neural stream: truncated or malformed header")
        scale_offset = data[pos] - 128
        pos += 1
        if abs(scale_offset) > MAX_SCALE_OFFSET or (data[0] == ADAPTED_MAGIC and not scale_offset):
            raise CorruptDataError(f"neural stream: bad scale offset {scale_offset}")
    bounds = None
    corrections: tuple[tuple[int, tuple[int, ...]], ...] = ()
    group_offsets: tuple[tuple[int, int], ...] = ()
    cell_tables = False
    if data[0] in (EXTENDED_MAGIC, EXTENDED_WINDOW_MAGIC, LEVELS_MAGIC):
        unused = 3 if data[0] == EXTENDED_WINDOW_MAGIC else 0  # no centroid or range there
        bare = (0, 1) if data[0] != LEVELS_MAGIC else ()  # 0xAA: the level bounds suffice
        if (pos >= len(data) or data[pos] > 63 or data[pos] in bare or data[pos] & unused
                or (data[pos] & 32 and not data[pos] & 4)):
            raise CorruptDataError("neural stream: bad extended-slice flags")
        extended_flags = data[pos]
        centroid = bool(extended_flags & 1)
        pos += 1
        if extended_flags & 2:
            lo, pos = read_varint(data, pos)
            below_top, pos = read_varint(data, pos)
            bounds = (lo, (1 << bits) - 1 - below_top)
            if not 0 <= lo <= bounds[1]:
                raise CorruptDataError(f"neural stream: bad bounded range {bounds}")
        if extended_flags & 4:
            corrections, pos = _read_per_group(
                data, pos, "mean corrections", lambda index: len(GROUPS[index % 3].offsets),
                (lambda index: len(taps(GROUPS[index % 3]))) if extended_flags & 32 else None)
            _check_corrections(corrections, tau, CorruptDataError)
        if extended_flags & 8:
            pairs, pos = _read_per_group(data, pos, "group scale offsets", lambda _: 1)
            group_offsets = tuple((index, values[0]) for index, values in pairs)
            _check_group_offsets(group_offsets, scale_offset, CorruptDataError)
        cell_tables = bool(extended_flags & 16)
    level_taus: tuple[int, ...] = ()
    if data[0] == LEVELS_MAGIC:
        count, pos = read_varint(data, pos)
        if not tau or not 1 <= count <= MAX_LEVELS:
            raise CorruptDataError(f"neural stream: bad level bounds ({count}, tau {tau})")
        bounds_read = []
        for _ in range(count):
            value, pos = read_varint(data, pos)
            if value > tau:
                raise CorruptDataError(f"neural stream: level bound {value} above tau {tau}")
            bounds_read.append(value)
        level_taus = tuple(bounds_read)
    if cell_tables and window_bound and tau > MAX_CELL_WINDOW_TAU:
        raise CorruptDataError(f"neural stream: near-lossless tables weigh refinement bins "
                               f"only for tau 1..{MAX_CELL_WINDOW_TAU}, not {tau}")
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
    if cell_tables and not tau:
        raise CorruptDataError("neural stream: near-lossless tables without tau")
    header = StreamHeader(rows, cols, bits, tau, uint16, tuple(offsets), model_id,
                          int.from_bytes(crc, "little"), copy, scale_offset, centroid,
                          window_bound, centred_cells, bounds, corrections, group_offsets,
                          cell_tables, level_taus)
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def _zigzag(value: int) -> int:
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def _unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def _read_per_group(data: bytes, pos: int, what: str, values_per_group: Callable[[int], int],
                    most_per_group: Callable[[int], int] | None = None
                    ) -> tuple[tuple[tuple[int, tuple[int, ...]], ...], int]:
    """A count, then per group its number and its zigzag values: ((number, values), ...).
    ``most_per_group``: each group states how many values it has (1 .. that many)."""
    count, pos = read_varint(data, pos)
    if count > 3 * MAX_LEVELS:
        raise CorruptDataError(f"neural stream: {count} {what}")
    out = []
    for _ in range(count):
        index, pos = read_varint(data, pos)
        n = values_per_group(index)
        if most_per_group is not None:
            n, pos = read_varint(data, pos)
            if not 1 <= n <= most_per_group(index):
                raise CorruptDataError(f"neural stream: {what}: {n} values for group {index}")
        values = []
        for _ in range(n):
            value, pos = read_varint(data, pos)
            values.append(_unzigzag(value))
        out.append((index, tuple(values)))
    return tuple(out), pos


def _check_corrections(corrections, tau: int, error: type[Exception]) -> None:
    """Groups in increasing order, inside the pyramid, one weight per tap (1 .. all of
    ``mean_fit.taps``), each bounded."""
    previous = -1
    for index, weights in corrections:
        if (not previous < index < 3 * MAX_LEVELS
                or not 1 <= len(weights) <= len(taps(GROUPS[index % 3]))
                or max(abs(w) for w in weights) >= MAX_WEIGHT):
            raise error(f"neural stream: bad mean correction for group {index}")
        previous = index


def _check_group_offsets(pairs, scale_offset: int, error: type[Exception]) -> None:
    """Groups in increasing order inside the pyramid, each offset non-zero and the total within
    the stream's scale-offset reach."""
    previous = -1
    for index, delta in pairs:
        if (not previous < index < 3 * MAX_LEVELS or not delta
                or abs(scale_offset + delta) > MAX_SCALE_OFFSET):
            raise error(f"neural stream: bad scale offset for group {index}")
        previous = index
