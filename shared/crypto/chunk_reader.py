"""Exact-size reads over a stream of byte chunks, with bounded memory.

Objects arrive as chunks of any size (file reads, gRPC messages) or as one ``bytes``. Framing
needs "give me exactly n bytes, or tell me the stream ended", and must not copy a several-hundred
MB object when it is already in memory: a read that fits in the current chunk is a zero-copy
``memoryview`` slice; only reads spanning chunk boundaries are assembled into a new buffer.
"""

from __future__ import annotations

from collections.abc import Iterable

BytesLike = bytes | bytearray | memoryview

_EMPTY = memoryview(b"")


class ChunkReader:
    """Pull exact-length pieces from ``bytes`` or an iterable of bytes-like chunks."""

    def __init__(self, source: Iterable[BytesLike] | BytesLike) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = (source,)
        self._chunks = iter(source)
        self._view = _EMPTY
        self._offset = 0
        self.position = 0
        """Bytes handed out so far (the offset of the next read in the stream)."""

    def _load_next_chunk(self) -> bool:
        for chunk in self._chunks:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"object chunks must be bytes, not {type(chunk).__name__}")
            if len(chunk):
                self._view = memoryview(chunk).cast("B")
                self._offset = 0
                return True
        self._view = _EMPTY
        self._offset = 0
        return False

    def read(self, size: int) -> BytesLike:
        """Exactly ``size`` bytes, or fewer only when the stream ends first."""
        available = len(self._view) - self._offset
        if available >= size:
            piece = self._view[self._offset : self._offset + size]
            self._offset += size
            self.position += size
            return piece
        assembled = bytearray(self._view[self._offset :])
        self._offset = len(self._view)
        while len(assembled) < size and self._load_next_chunk():
            take = min(size - len(assembled), len(self._view))
            assembled += self._view[:take]
            self._offset = take
        self.position += len(assembled)
        return assembled

    def at_end(self) -> bool:
        """True when no byte is left (pulls at most one more chunk to find out)."""
        if len(self._view) - self._offset > 0:
            return False
        return not self._load_next_chunk()
