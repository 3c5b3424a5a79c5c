"""Keyless check that a byte stream is a well-formed encrypted object (for the storage service).

Without keys nothing can be authenticated, but the structure can: a valid header (magic,
version, limits, checksum, field syntax), then frames whose prefixes obey the format's rules
(full data frames, at most one shorter last data frame, one final frame of the sealed-trailer
size) with nothing after the final frame. This catches truncated or padded uploads and non-objects
at the door. It is push-based (``feed`` chunks as they arrive, then ``finish``), so a gRPC
servicer can validate while it writes to disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fedcodec.shared.crypto.chunk_reader import BytesLike
from fedcodec.shared.crypto.errors import (
    NotAnObjectError,
    TamperedObjectError,
    TruncatedObjectError,
)
from fedcodec.shared.crypto.frame_stream import (
    FLAG_FINAL,
    FRAME_PREFIX,
    TAG_BYTES,
    check_frame_prefix,
)
from fedcodec.shared.crypto.object_header import ObjectHeader, header_length, parse_header


@dataclass(frozen=True)
class ObjectLayout:
    """What the structure reveals: header, frame count, plaintext and total sizes."""

    header: ObjectHeader
    data_frames: int
    plaintext_length: int
    total_length: int


class ObjectStructureCheck:
    """Incremental structural validation; raises the format's errors as soon as a rule breaks."""

    def __init__(self) -> None:
        self._pending = bytearray()  # header bytes, or a partial frame prefix
        self._header: ObjectHeader | None = None
        self._skip = 0  # ciphertext + tag bytes of the current frame still to pass
        self._sequence = 0
        self._previous_short = False
        self._final_seen = False
        self._plaintext = 0
        self._total = 0

    def feed(self, data: BytesLike) -> None:
        view = memoryview(data).cast("B")
        self._total += len(view)
        while len(view):
            if self._header is None:
                view = self._feed_header(view)
            elif self._skip:
                taken = min(self._skip, len(view))
                self._skip -= taken
                view = view[taken:]
            elif self._final_seen:
                raise TamperedObjectError(
                    f"tampered: object {self._header.object_id!r} has bytes after its final frame"
                )
            else:
                taken = min(FRAME_PREFIX.size - len(self._pending), len(view))
                self._pending += view[:taken]
                view = view[taken:]
                if len(self._pending) == FRAME_PREFIX.size:
                    self._start_frame()

    def _feed_header(self, view: memoryview) -> memoryview:
        self._pending += view
        total = header_length(self._pending)
        if total is None or len(self._pending) < total:
            return view[len(view) :]
        self._header = parse_header(self._pending)
        rest = memoryview(bytes(self._pending[total:]))
        self._pending = bytearray()
        return rest

    def _start_frame(self) -> None:
        assert self._header is not None
        flags, length = FRAME_PREFIX.unpack(self._pending)
        self._pending = bytearray()
        check_frame_prefix(
            f"object {self._header.object_id!r}",
            self._header.frame_size,
            self._sequence,
            flags,
            length,
            self._previous_short,
        )
        self._skip = length + TAG_BYTES
        if flags == FLAG_FINAL:
            self._final_seen = True
            return
        self._plaintext += length
        self._previous_short = length < self._header.frame_size
        self._sequence += 1

    def finish(self) -> ObjectLayout:
        """The layout once the stream is complete; raises if it ended early."""
        if self._header is None:
            if not self._pending:
                raise NotAnObjectError("not an encrypted fedcodec object (empty input)")
            parse_header(self._pending)  # raises the precise truncation error
            raise AssertionError("unreachable: a complete header would have been parsed")
        if not self._final_seen or self._skip or self._pending:
            raise TruncatedObjectError(
                f"truncated: object {self._header.object_id!r} ends before its final frame"
            )
        return ObjectLayout(self._header, self._sequence, self._plaintext, self._total)


def scan_object(chunks: Iterable[BytesLike] | BytesLike) -> ObjectLayout:
    """Validate a whole object's structure without keys and return its layout."""
    check = ObjectStructureCheck()
    if isinstance(chunks, (bytes, bytearray, memoryview)):
        chunks = (chunks,)
    for chunk in chunks:
        check.feed(chunk)
    return check.finish()
