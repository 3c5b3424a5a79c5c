"""The body of an encrypted object: AES-256-GCM frames with sequence numbers and a final frame.

Why frames: objects are several hundred MB and must stream with bounded memory, yet every byte
must be authenticated before it is used. Each frame is sealed on its own; its nonce and associated
data carry its sequence number and whether it is the final frame, and the associated data carries
the header digest. So reordering, duplicating, dropping, splicing frames from another object,
cutting the stream at a frame boundary, or appending after the end all fail authentication or the
structural checks. The final frame holds no data: it seals the plaintext length and SHA-256, so
the whole content is verified at the end as well.

A reader yields each frame's plaintext once that frame authenticates; callers must treat output
as provisional until the iterator finishes without raising (write to a temp file, then rename).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fedcodec.shared.crypto.chunk_reader import ChunkReader
from fedcodec.shared.crypto.errors import TamperedObjectError, TruncatedObjectError

FRAME_PREFIX = struct.Struct(">BI")  # flags, plaintext length
TRAILER = struct.Struct(">Q32s")  # total plaintext length, SHA-256 of the plaintext
FLAG_FINAL = 0x01
TAG_BYTES = 16
MAX_FRAMES = 2**32


def frame_nonce(sequence: int, flags: int) -> bytes:
    """96-bit GCM nonce: u64 sequence number, three zero bytes, the flags byte."""
    return struct.pack(">Q3xB", sequence, flags)


def frame_aad(bound_digest: bytes, sequence: int, flags: int, length: int) -> bytes:
    """Associated data: header digest, sequence number, flags, plaintext length."""
    return bound_digest + struct.pack(">QBI", sequence, flags, length)


def _seal(aead: AESGCM, bound_digest: bytes, sequence: int, flags: int, plaintext) -> bytes:
    length = len(plaintext)
    sealed = bytearray(FRAME_PREFIX.size + length + TAG_BYTES)
    FRAME_PREFIX.pack_into(sealed, 0, flags, length)
    aead.encrypt_into(
        frame_nonce(sequence, flags),
        plaintext,
        frame_aad(bound_digest, sequence, flags, length),
        memoryview(sealed)[FRAME_PREFIX.size :],
    )
    return bytes(sealed)


def seal_frames(
    plaintext: ChunkReader, frame_key: bytes, bound_digest: bytes, frame_size: int
) -> Iterator[bytes]:
    """Encrypt the plaintext as full data frames, a shorter last one, then the final frame."""
    aead = AESGCM(frame_key)
    hasher = hashlib.sha256()
    total = 0
    sequence = 0
    while True:
        piece = plaintext.read(frame_size)
        if not piece:
            break
        if sequence >= MAX_FRAMES - 1:
            raise ValueError(f"object too large: more than {MAX_FRAMES - 1} frames")
        hasher.update(piece)
        total += len(piece)
        yield _seal(aead, bound_digest, sequence, 0, piece)
        sequence += 1
        if len(piece) < frame_size:
            break
    trailer = TRAILER.pack(total, hasher.digest())
    yield _seal(aead, bound_digest, sequence, FLAG_FINAL, trailer)


class FrameOpener:
    """Iterate the verified plaintext of an object's frames; raises on any defect.

    After a complete iteration, ``plaintext_length`` and ``content_sha256`` hold the values the
    final frame sealed (both already checked against what was yielded).
    """

    def __init__(
        self,
        body: ChunkReader,
        frame_key: bytes,
        bound_digest: bytes,
        frame_size: int,
        object_id: str,
    ) -> None:
        self._body = body
        self._aead = AESGCM(frame_key)
        self._bound_digest = bound_digest
        self._frame_size = frame_size
        self._name = f"object {object_id!r}"
        self._frames = self._open_all()
        self.plaintext_length: int | None = None
        self.content_sha256: bytes | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._frames)

    def _open_all(self) -> Iterator[bytes]:
        hasher = hashlib.sha256()
        total = 0
        sequence = 0
        previous_short = False
        while True:
            flags, length = self._read_prefix(sequence)
            final = flags == FLAG_FINAL
            check_frame_prefix(
                self._name, self._frame_size, sequence, flags, length, previous_short
            )
            sealed = self._body.read(length + TAG_BYTES)
            if len(sealed) < length + TAG_BYTES:
                raise TruncatedObjectError(f"truncated: {self._name} ends inside frame {sequence}")
            try:
                plaintext = self._aead.decrypt(
                    frame_nonce(sequence, flags),
                    sealed,
                    frame_aad(self._bound_digest, sequence, flags, length),
                )
            except InvalidTag:
                raise TamperedObjectError(
                    f"tampered: frame {sequence} of {self._name} fails authentication"
                ) from None
            if final:
                self._verify_trailer(plaintext, total, hasher.digest())
                if not self._body.at_end():
                    raise TamperedObjectError(
                        f"tampered: {self._name} has bytes after its final frame"
                    )
                return
            hasher.update(plaintext)
            total += length
            previous_short = length < self._frame_size
            sequence += 1
            yield plaintext

    def _read_prefix(self, sequence: int) -> tuple[int, int]:
        prefix = self._body.read(FRAME_PREFIX.size)
        if len(prefix) == FRAME_PREFIX.size:
            return FRAME_PREFIX.unpack(prefix)
        if prefix:
            raise TruncatedObjectError(f"truncated: {self._name} ends inside frame {sequence}")
        if sequence == 0:
            raise TruncatedObjectError(f"truncated: {self._name} has no frames after its header")
        raise TruncatedObjectError(
            f"truncated: {self._name} ends after frame {sequence - 1} without its final frame"
        )

    def _verify_trailer(self, trailer: bytes, total: int, digest: bytes) -> None:
        length, content_sha256 = TRAILER.unpack(trailer)
        if length != total or not hmac.compare_digest(content_sha256, digest):
            raise TamperedObjectError(
                f"tampered: content of {self._name} does not match its sealed length and SHA-256"
            )
        self.plaintext_length = length
        self.content_sha256 = content_sha256


def check_frame_prefix(
    name: str, frame_size: int, sequence: int, flags: int, length: int, previous_short: bool
) -> None:
    """Structural rules a frame prefix must meet (also checked by the keyless validator)."""
    if sequence >= MAX_FRAMES:
        raise TamperedObjectError(f"tampered: {name} has more than {MAX_FRAMES} frames")
    if flags not in (0, FLAG_FINAL):
        raise TamperedObjectError(f"tampered: frame {sequence} of {name} has invalid flags {flags}")
    if flags == FLAG_FINAL:
        if length != TRAILER.size:
            raise TamperedObjectError(
                f"tampered: final frame {sequence} of {name} has length {length}, "
                f"expected {TRAILER.size}"
            )
        return
    if previous_short:
        raise TamperedObjectError(
            f"tampered: frame {sequence} of {name} follows a short frame (only the final may)"
        )
    if not 1 <= length <= frame_size:
        raise TamperedObjectError(
            f"tampered: frame {sequence} of {name} has length {length} "
            f"(frame size {frame_size})"
        )
