"""The fixed byte layout of an ``.fcz`` file: preamble, stream table entries, footer, limits.

Everything here is little-endian and fixed-size so a reader can check every length against the
bytes that remain before it allocates anything. ``docs/container-format.md`` documents the same
layout byte for byte; ``tests/test_container_format.py`` checks each field at its offset.

    preamble (32) | header JSON (H) | stream table (16 x N) | stream data (D) | footer (16)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fedcodec.shared.errors import CorruptDataError

MAGIC = b"\x89FCZ\r\n\x1a\n"
"""PNG-style: a high-bit byte, the name, CR LF, ^Z, LF: text-mode or 7-bit transfers break it."""
END_MAGIC = b"FCZ-END\n"
FORMAT_VERSION = 2
"""The newest version this build writes. A writer uses the lowest version that can hold the
study (``ContainerHeader.format_version``): version 1 unless a series has its own coding."""
SUPPORTED_VERSIONS = (1, 2)

PREAMBLE = struct.Struct("<8sHHIIQI")
"""magic, version, flags, header_length, stream_count, data_length, meta_crc32."""
PREAMBLE_SIZE = PREAMBLE.size  # 32
META_CRC_OFFSET = 28
"""The metadata CRC covers preamble bytes [0, 28), the header JSON and the stream table."""

STREAM_ENTRY = struct.Struct("<QII")
"""offset (relative to the start of stream data), length, crc32."""
STREAM_ENTRY_SIZE = STREAM_ENTRY.size  # 16

FOOTER = struct.Struct("<Q8s")
"""total file length, END_MAGIC."""
FOOTER_SIZE = FOOTER.size  # 16

MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_STREAMS = 1 << 20
MAX_STREAM_BYTES = (1 << 32) - 1


@dataclass(frozen=True)
class Preamble:
    """The first 32 bytes: what a reader needs to find and check everything else."""

    version: int
    flags: int
    header_length: int
    stream_count: int
    data_length: int
    meta_crc32: int

    @property
    def table_offset(self) -> int:
        return PREAMBLE_SIZE + self.header_length

    @property
    def data_offset(self) -> int:
        return self.table_offset + STREAM_ENTRY_SIZE * self.stream_count

    @property
    def total_length(self) -> int:
        return self.data_offset + self.data_length + FOOTER_SIZE

    def pack(self) -> bytes:
        return PREAMBLE.pack(
            MAGIC,
            self.version,
            self.flags,
            self.header_length,
            self.stream_count,
            self.data_length,
            self.meta_crc32,
        )


def parse_preamble(data: bytes, file_size: int) -> Preamble:
    """Parse and bound-check the preamble; ``data`` holds the file's first bytes (up to 32)."""
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise CorruptDataError("not an .fcz file (bad magic)")
    if len(data) < PREAMBLE_SIZE:
        raise CorruptDataError(f"truncated at byte {file_size} (inside the 32-byte preamble)")
    _, version, flags, header_length, stream_count, data_length, crc = PREAMBLE.unpack(
        data[:PREAMBLE_SIZE]
    )
    if version not in SUPPORTED_VERSIONS:
        raise CorruptDataError(
            f"unsupported .fcz version {version} (this fedcodec reads versions "
            f"{', '.join(str(v) for v in SUPPORTED_VERSIONS)})"
        )
    if flags != 0:
        raise CorruptDataError(
            f"unsupported .fcz flags 0x{flags:04x} (version {version} defines none)"
        )
    if header_length > MAX_HEADER_BYTES:
        raise CorruptDataError(
            f"corrupt preamble: header length {header_length} exceeds {MAX_HEADER_BYTES}"
        )
    if stream_count > MAX_STREAMS:
        raise CorruptDataError(
            f"corrupt preamble: stream count {stream_count} exceeds {MAX_STREAMS}"
        )
    return Preamble(version, flags, header_length, stream_count, data_length, crc)


@dataclass(frozen=True)
class StreamEntry:
    """Where one stream lives, relative to the start of the stream data, and its CRC-32."""

    offset: int
    length: int
    crc32: int

    def pack(self) -> bytes:
        return STREAM_ENTRY.pack(self.offset, self.length, self.crc32)


def parse_stream_table(table: bytes, count: int, data_length: int) -> list[StreamEntry]:
    """Unpack ``count`` entries and check they tile the stream data exactly, in order."""
    entries = [StreamEntry(*e) for e in STREAM_ENTRY.iter_unpack(table)]
    if len(entries) != count:
        raise CorruptDataError(f"corrupt stream table: {len(entries)} entries, expected {count}")
    expected = 0
    for index, entry in enumerate(entries):
        if entry.offset != expected:
            raise CorruptDataError(
                f"corrupt stream table: stream {index} starts at {entry.offset}, "
                f"expected {expected}"
            )
        expected += entry.length
    if expected != data_length:
        raise CorruptDataError(
            f"corrupt stream table: streams cover {expected} bytes, preamble says {data_length}"
        )
    return entries


def pack_footer(total_length: int) -> bytes:
    return FOOTER.pack(total_length, END_MAGIC)


def check_footer(data: bytes, total_length: int) -> None:
    """The footer proves the writer finished: the end magic and the same total length."""
    length, end_magic = FOOTER.unpack(data)
    if end_magic != END_MAGIC:
        raise CorruptDataError("corrupt footer: end marker missing (file incomplete or damaged)")
    if length != total_length:
        raise CorruptDataError(
            f"corrupt footer: total length {length}, but the file is {total_length} bytes"
        )
