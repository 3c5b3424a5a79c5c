"""Just enough of the JPEG 2000 codestream syntax (ITU-T T.800 Annex A) to police it.

Shared by J2K and HTJ2K (same marker syntax). Two jobs:

* ``strip_comments``: OpenJPEG and OpenJPH write a COM segment naming themselves (37 and 23
  bytes). That is 1-2% of a 64x64 fMRI slice for nothing a decoder uses, so we drop main-header
  COM segments. Nothing else refers to their bytes (tile-part lengths count from each SOT).
* ``add_bit_depth_note`` / ``read_bit_depth_note``: the one COM segment we do write (10 bytes,
  binary, ``FCB`` + the real bit depth), for HTJ2K's lossy mode only. OpenJPH codes 12-bit data
  at the container's 16-bit precision, so a lossy decode can ring above 4095; the note lets our
  decoder clip to the real range. Other decoders skip COM segments.
* ``check_structure``: a bare codestream has no checksum, and OpenJPH decodes a truncated stream
  into a half-blank image without complaint. Walking the main header's segment lengths and then
  the tile-parts' ``Psot`` lengths must land exactly on the final EOC marker; a cut or padded
  stream does not. (Damage *inside* the entropy-coded data stays undetectable here.)
"""

from __future__ import annotations

import struct

from fedcodec.shared.errors import CorruptDataError

SOC = b"\xff\x4f"
SIZ = b"\xff\x51"
SOT = b"\xff\x90"
EOC = b"\xff\xd9"
COM = b"\xff\x64"
_NOTE_TAG = b"FCB"
_BINARY_COMMENT = b"\x00\x00"  # Rcom = 0: binary data


def _main_header_segments(data: bytes, codec: str) -> list[tuple[int, int, bytes]]:
    """``(offset, total length, marker)`` of each main-header segment, SOC excluded; ends at SOT."""
    if not data.startswith(SOC + SIZ):
        raise CorruptDataError(f"{codec} stream does not start with SOC/SIZ (not a J2K codestream)")
    segments = []
    pos = len(SOC)
    while True:
        if pos + 4 > len(data):
            raise CorruptDataError(f"{codec} stream is truncated inside its main header")
        marker = data[pos : pos + 2]
        if marker == SOT:
            return segments
        if marker[0] != 0xFF:
            raise CorruptDataError(f"{codec} stream has a damaged main header at byte {pos}")
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise CorruptDataError(f"{codec} stream has a damaged main header at byte {pos}")
        segments.append((pos, 2 + length, marker))
        pos += 2 + length


def check_structure(data: bytes, codec: str) -> None:
    """Raise CorruptDataError unless header and tile-part lengths account for every byte."""
    segments = _main_header_segments(data, codec)
    pos = segments[-1][0] + segments[-1][1] if segments else len(SOC)
    while pos < len(data) - len(EOC):
        if data[pos : pos + 2] != SOT or pos + 12 > len(data):
            raise CorruptDataError(f"{codec} stream is damaged: no tile-part at byte {pos}")
        (tile_part_length,) = struct.unpack_from(">I", data, pos + 6)
        if tile_part_length == 0:  # "extends to EOC": nothing more to check
            break
        if tile_part_length < 14:
            raise CorruptDataError(f"{codec} stream is damaged: bad tile-part length at byte {pos}")
        pos += tile_part_length
    else:
        if pos != len(data) - len(EOC):
            raise CorruptDataError(f"{codec} stream is truncated (tile-parts run past its end)")
    if not data.endswith(EOC):
        raise CorruptDataError(f"{codec} stream is truncated (no end-of-codestream marker)")


def strip_comments(data: bytes) -> bytes:
    """Drop COM segments from the main header of a codestream our encoder just wrote."""
    segments = _main_header_segments(data, "encoder output")
    kept = [SOC]
    end = len(SOC)
    for offset, length, marker in segments:
        if marker != COM:
            kept.append(data[offset : offset + length])
        end = offset + length
    kept.append(data[end:])
    return b"".join(kept)


def add_bit_depth_note(data: bytes, bits: int) -> bytes:
    """Insert our bit-depth COM segment at the end of the main header (just before SOT)."""
    segments = _main_header_segments(data, "encoder output")
    end = segments[-1][0] + segments[-1][1] if segments else len(SOC)
    body = _BINARY_COMMENT + _NOTE_TAG + bytes([bits])
    return data[:end] + COM + struct.pack(">H", 2 + len(body)) + body + data[end:]


def read_bit_depth_note(data: bytes, codec: str) -> int | None:
    """The bit depth :func:`add_bit_depth_note` recorded, or None if the stream has no note."""
    for offset, length, marker in _main_header_segments(data, codec):
        body = data[offset + 4 : offset + length]
        if marker == COM and body[:2] == _BINARY_COMMENT and body[2:5] == _NOTE_TAG:
            if len(body) != 6 or not 1 <= body[5] <= 16:
                raise CorruptDataError(f"{codec} stream has a damaged bit-depth note")
            return body[5]
    return None
