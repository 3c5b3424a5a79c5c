"""Write a coded study as an ``.fcz`` file: atomically, deterministically, in one pass.

The writer takes streams that are already coded (and, in ``compress_study``, already verified),
lays them out as ``layout.py`` says and writes to a temporary file beside the target before
renaming it, so a crash or a full disk never leaves a half-written ``.fcz`` behind. The same study
always gives the same bytes (no timestamps, canonical JSON).
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pydicom

from fedcodec.shared.container.dicom_headers import pack_datasets_with_digest
from fedcodec.shared.container.header import (
    CodecInfo,
    ContainerHeader,
    HeaderBlob,
    SeriesCoding,
    SeriesEntry,
    SeriesInfo,
    header_from_json,
    header_to_json,
)
from fedcodec.shared.container.layout import (
    MAX_HEADER_BYTES,
    MAX_STREAM_BYTES,
    MAX_STREAMS,
    META_CRC_OFFSET,
    Preamble,
    StreamEntry,
    pack_footer,
)
from fedcodec.shared.errors import CorruptDataError


@dataclass
class CodedSeries:
    """One series ready to store: its description, its DICOM headers, its coded streams."""

    info: SeriesInfo
    datasets: list[pydicom.Dataset]
    streams: Sequence[bytes]
    profile: str | None = None
    coding: SeriesCoding | None = None
    """How this series was coded, when not as the study says (stored only if it differs)."""
    pixels_sha256: str | None = None
    """:func:`~fedcodec.shared.container.digests.pixels_sha256` of the stored values its streams
    decode to (as ``decompress`` rebuilds them); recorded so a reader can prove it got them."""


@dataclass
class CodedStudy:
    """What :func:`write_container` stores."""

    codec: CodecInfo
    mode: str
    tau: int
    quality: int | None
    series: list[CodedSeries]
    profile: str | None = None
    writer: str = field(default_factory=lambda: _writer_name())
    header_compression: str = "zstd"


def _writer_name() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"fedcodec {version('fedcodec')}"
    except PackageNotFoundError:
        return "fedcodec"


def write_container(target: str | os.PathLike[str] | BinaryIO, study: CodedStudy) -> int:
    """Write ``study`` to a path (atomically: temp file + rename) or a binary file object.

    Returns the number of bytes written.
    """
    header, streams = _lay_out(study)
    header_json = header_to_json(header)
    if len(header_json) > MAX_HEADER_BYTES:
        raise ValueError(
            f"header is {len(header_json)} bytes, the format allows {MAX_HEADER_BYTES}"
        )
    version = header.format_version
    try:  # never write what we could not read back
        header_from_json(header_json, len(streams), version)
    except CorruptDataError as exc:
        raise ValueError(f"refusing to write an invalid container: {exc}") from None
    chunks = pack_container(version, header_json, streams)
    total = sum(len(chunk) for chunk in chunks)
    if hasattr(target, "write"):
        for chunk in chunks:
            target.write(chunk)  # type: ignore[union-attr]
        return total
    _write_atomically(Path(target), chunks)
    return total


def pack_container(version: int, header_json: bytes, streams: Sequence[bytes]) -> list[bytes]:
    """The file's bytes, in order, around a header and streams: table, CRCs, lengths, footer.

    Every checksum and length is computed here, so this is also what the fuzz campaign uses to
    build *crafted* damage (a changed stream or header with all CRCs recomputed) that only the
    checks above the framing can catch.
    """
    entries = []
    position = 0
    for stream in streams:
        entries.append(StreamEntry(position, len(stream), zlib.crc32(stream)))
        position += len(stream)
    table = b"".join(e.pack() for e in entries)
    preamble = Preamble(version, 0, len(header_json), len(streams), position, 0)
    crc = zlib.crc32(preamble.pack()[:META_CRC_OFFSET])
    crc = zlib.crc32(table, zlib.crc32(header_json, crc))
    preamble = Preamble(version, 0, len(header_json), len(streams), position, crc)
    return [preamble.pack(), header_json, table, *streams, pack_footer(preamble.total_length)]


def _lay_out(study: CodedStudy) -> tuple[ContainerHeader, list[bytes]]:
    """Assign stream indices: per series, its header blob, then its pixel streams."""
    streams: list[bytes] = []
    entries = []
    for coded in study.series:
        blob, raw_length, digest = pack_datasets_with_digest(
            coded.datasets, study.header_compression
        )
        blob_ref = HeaderBlob(
            len(streams), study.header_compression, raw_length, len(coded.datasets), digest
        )
        streams.append(blob)
        first = len(streams)
        streams.extend(bytes(s) for s in coded.streams)
        study_coding = SeriesCoding(study.codec, study.mode, study.tau, study.quality)
        own = coded.coding if coded.coding not in (None, study_coding) else None
        entries.append(
            SeriesEntry(coded.info, first, len(coded.streams), blob_ref, coded.profile, own,
                        coded.pixels_sha256)
        )
    if len(streams) > MAX_STREAMS:
        raise ValueError(f"{len(streams)} streams; the format allows {MAX_STREAMS}")
    too_long = [i for i, s in enumerate(streams) if len(s) > MAX_STREAM_BYTES]
    if too_long:
        raise ValueError(f"stream {too_long[0]} is longer than {MAX_STREAM_BYTES} bytes")
    header = ContainerHeader(
        codec=study.codec,
        mode=study.mode,
        tau=study.tau,
        quality=study.quality,
        profile=study.profile,
        series=entries,
        writer=study.writer,
    )
    return header, streams


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomically(path: Path, chunks: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fchmod(out.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 -> what open() gives
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
