"""Encrypt or decrypt a file to a file, streaming, never leaving a partial output behind.

Decryption releases each frame as soon as it authenticates, but the object is only known to be
complete and untampered once the final frame verifies. So output goes to a temporary file beside
the target, which is renamed over the target only after the last check passed; on any error the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.crypto.envelope import decrypt_object, encrypt_object, read_header
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.crypto.object_header import DEFAULT_FRAME_SIZE, ObjectHeader
from fedcodec.shared.errors import FedcodecError

READ_CHUNK = 1 << 20


def read_chunks(path: Path, size: int = READ_CHUNK) -> Iterator[bytes]:
    """The file's bytes in ``size`` pieces (a readable error if it cannot be opened)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
    except OSError as exc:
        raise FedcodecError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        while piece := handle.read(size):
            yield piece


def encrypt_file(
    source: Path,
    target: Path,
    keyring: SiteKeyring,
    *,
    object_id: str,
    codec: str,
    content_type: str = "application/x-fcz",
    frame_size: int = DEFAULT_FRAME_SIZE,
) -> ObjectHeader:
    """Encrypt ``source`` into ``target``; returns the new object's header."""
    stream = encrypt_object(
        read_chunks(source),
        keyring,
        object_id=object_id,
        codec=codec,
        content_type=content_type,
        frame_size=frame_size,
    )
    header_bytes = next(stream)
    write_atomic(target, _prepend(header_bytes, stream))
    return read_header(header_bytes)


def decrypt_file(source: Path, target: Path, keyring: SiteKeyring) -> ObjectHeader:
    """Decrypt ``source`` into ``target``, which appears only if every check passed."""
    header, frames = decrypt_object(read_chunks(source), keyring)
    write_atomic(target, frames)
    return header


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
