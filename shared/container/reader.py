"""Read an ``.fcz`` file: check the frame eagerly, read streams lazily, one at a time.

:func:`read_container` reads only the preamble, the JSON header, the stream table and the footer,
and checks all of them (magic, version, lengths against the real file size, metadata CRC, footer,
stream table tiling, header schema). Streams are read on demand with their own CRC, so one slice
can be decoded without touching the others and a damaged stream is named by number. No length is
trusted before it is compared with the bytes that actually remain, so a crafted or truncated file
ends in a one-line :class:`CorruptDataError`, never a huge allocation or a hang.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pydicom

from fedcodec.shared.container.dicom_headers import unpack_datasets
from fedcodec.shared.container.header import ContainerHeader, SeriesEntry, header_from_json
from fedcodec.shared.container.layout import (
    END_MAGIC,
    FOOTER,
    FOOTER_SIZE,
    META_CRC_OFFSET,
    PREAMBLE_SIZE,
    Preamble,
    StreamEntry,
    check_footer,
    parse_preamble,
    parse_stream_table,
)
from fedcodec.shared.errors import CorruptDataError, FedcodecError

Source = str | os.PathLike[str] | bytes | bytearray | memoryview


class _ByteSource:
    """Random access to the container's bytes, from a file (reopened per batch) or memory."""

    def __init__(self, source: Source) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.path: Path | None = None
            self.data: bytes | None = bytes(source)
            self.size = len(self.data)
            self.name = "<memory>"
            return
        self.path = Path(source)
        self.data = None
        self.name = str(self.path)
        if not self.path.exists():
            raise FedcodecError(f"no such file: {self.path}")
        if self.path.is_dir():
            raise FedcodecError(f"{self.path} is a folder, not an .fcz file")
        self.size = self.path.stat().st_size

    @contextmanager
    def opened(self) -> Iterator[_Reader]:
        if self.data is not None:
            yield _Reader(None, self.data)
            return
        assert self.path is not None
        with open(self.path, "rb") as handle:
            yield _Reader(handle, None)


class _Reader:
    def __init__(self, handle: BinaryIO | None, data: bytes | None) -> None:
        self.handle = handle
        self.data = data

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer only if the file ends first)."""
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.handle is not None
        self.handle.seek(offset)
        return self.handle.read(length)


class Container:
    """An opened ``.fcz``: the checked header and table, and lazy, checked stream access."""

    def __init__(
        self,
        source: _ByteSource,
        preamble: Preamble,
        header: ContainerHeader,
        entries: list[StreamEntry],
    ) -> None:
        self._source = source
        self.preamble = preamble
        self.header = header
        self.entries = entries

    @property
    def version(self) -> int:
        return self.preamble.version

    @property
    def size(self) -> int:
        """Total bytes of the file."""
        return self.preamble.total_length

    @property
    def stream_count(self) -> int:
        return len(self.entries)

    @property
    def series(self) -> list[SeriesEntry]:
        return self.header.series

    def stream_offset(self, index: int) -> int:
        """Absolute byte offset of stream ``index`` in the file."""
        return self.preamble.data_offset + self.entries[index].offset

    def stream_length(self, index: int) -> int:
        return self.entries[index].length

    def read_stream(self, index: int) -> bytes:
        """The bytes of one stream, CRC-checked."""
        with self._source.opened() as reader:
            return self._read(reader, index)

    def read_streams(self, indices: Iterable[int]) -> list[bytes]:
        with self._source.opened() as reader:
            return [self._read(reader, i) for i in indices]

    def _read(self, reader: _Reader, index: int) -> bytes:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"stream {index} does not exist ({len(self.entries)} streams)")
        entry = self.entries[index]
        start = self.preamble.data_offset + entry.offset
        data = reader.read_at(start, entry.length)
        if len(data) != entry.length:
            raise CorruptDataError(f"truncated at byte {start + len(data)} (inside stream {index})")
        if zlib.crc32(data) != entry.crc32:
            raise CorruptDataError(f"stream {index} checksum mismatch")
        return data

    def pixel_streams(self, series: int) -> list[bytes]:
        """The coded pixel streams of series ``series`` (what ``decode_volume`` takes)."""
        return self.read_streams(self.series[series].pixel_streams)

    def pixel_stream_bytes(self, series: int | None = None) -> int:
        """Bytes of coded pixels, for one series or the whole study (DICOM headers excluded)."""
        chosen = self.series if series is None else [self.series[series]]
        return sum(self.entries[i].length for entry in chosen for i in entry.pixel_streams)

    def datasets(self, series: int) -> list[pydicom.Dataset]:
        """The DICOM headers of series ``series``, exactly as they were read."""
        blob = self.series[series].headers
        data = self.read_stream(blob.stream)
        return unpack_datasets(
            data, blob.compression, blob.raw_length, blob.datasets, f"series {series}",
            blob.sha256,
        )

    def verify(self) -> None:
        """Read every stream and check its CRC (what ``fedcodec inspect --verify`` does)."""
        for _ in iter_streams(self):
            pass


def iter_streams(
    container: Container | Source, indices: Iterable[int] | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(index, bytes)`` for each stream (all, in file order, by default), CRC-checked."""
    if not isinstance(container, Container):
        container = read_container(container)
    chosen = range(container.stream_count) if indices is None else indices
    with container._source.opened() as reader:
        for index in chosen:
            yield index, container._read(reader, index)


def read_container(source: Source) -> Container:
    """Open and check an ``.fcz`` file (or its bytes); streams stay on disk until asked for."""
    byte_source = _ByteSource(source)
    size = byte_source.size
    with byte_source.opened() as reader:
        preamble = parse_preamble(reader.read_at(0, PREAMBLE_SIZE), size)
        meta_end = preamble.data_offset
        if size < meta_end:
            _raise_truncated(reader, size, preamble.total_length)
        meta = reader.read_at(0, meta_end)
        if len(meta) != meta_end:
            raise CorruptDataError(f"truncated at byte {len(meta)}")
        crc = zlib.crc32(meta[PREAMBLE_SIZE:], zlib.crc32(meta[:META_CRC_OFFSET]))
        if crc != preamble.meta_crc32:
            raise CorruptDataError("header checksum mismatch")
        total = preamble.total_length
        if size < total:
            _raise_truncated(reader, size, total)
        if size > total:
            raise CorruptDataError(f"{size - total} bytes of trailing data after byte {total}")
        check_footer(reader.read_at(total - FOOTER_SIZE, FOOTER_SIZE), total)
    entries = parse_stream_table(
        meta[preamble.table_offset :], preamble.stream_count, preamble.data_length
    )
    header = header_from_json(
        meta[PREAMBLE_SIZE : preamble.table_offset], preamble.stream_count, preamble.version
    )
    return Container(byte_source, preamble, header, entries)


def _raise_truncated(reader: _Reader, size: int, expected: int) -> None:
    """A short file is truncated, unless it ends in a valid footer: then the preamble is wrong."""
    if size >= PREAMBLE_SIZE + FOOTER_SIZE:
        length, end_magic = FOOTER.unpack(reader.read_at(size - FOOTER_SIZE, FOOTER_SIZE))
        if length == size and end_magic == END_MAGIC:
            raise CorruptDataError(
                f"corrupt preamble: it describes {expected} bytes, the complete file has {size}"
            )
    raise CorruptDataError(f"truncated at byte {size} (expected {expected} bytes)")
