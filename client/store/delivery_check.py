"""Is the object the service delivered the one that was asked for? Checked before any output.

Someone with write access to the storage disk can swap two objects of a site (files and index
rows): each still decrypts with the site's keys, so decryption alone cannot tell. The envelope
header binds the owning site and the object id (and the header's bound digest identifies the
encrypted content), so every client read compares them with the request, and with the site's
signed receipt for the object when it holds one, before a single byte is written.
"""

from __future__ import annotations

from collections.abc import Iterator

from fedcodec.shared.crypto.storage_receipt import Receipt
from fedcodec.shared.crypto import envelope
from fedcodec.shared.errors import CorruptDataError

HEADER_PREFIX_BYTES = 64 * 1024  # read_header never needs more


class IntegrityError(CorruptDataError):
    """The service delivered another object than the one asked for (or an altered version)."""


def peek_header(chunks: Iterator[bytes]) -> tuple[envelope.ObjectHeader, Iterator[bytes]]:
    """The object's public header, and the whole stream (prefix included) to read on."""
    prefix = bytearray()
    for chunk in chunks:
        prefix += chunk
        if len(prefix) >= HEADER_PREFIX_BYTES:
            break
    try:
        header = envelope.read_header(bytes(prefix))
    except BaseException:
        getattr(chunks, "close", lambda: None)()
        raise
    return header, _Rejoined(bytes(prefix), chunks)


class _Rejoined(Iterator[bytes]):
    """The bytes already read, then the rest; ``close`` closes the download underneath."""

    def __init__(self, first: bytes, rest: Iterator[bytes]) -> None:
        self._first: bytes | None = first
        self._rest = rest

    def __next__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return next(self._rest)

    def close(self) -> None:
        getattr(self._rest, "close", lambda: None)()


def check_delivered(
    header: envelope.ObjectHeader,
    *,
    site: str,
    object_id: str,
    sha256: str = "",
    receipt: Receipt | None = None,
) -> None:
    """Raise :class:`IntegrityError` unless the header is ``site/object_id`` (and its receipt).

    ``sha256`` is the ciphertext hash the service announced (the download stream is verified
    against it as it ends); with a ``receipt`` it must be the receipted one, and the header's
    bound digest the receipted content.
    """
    asked = f"{site}/{object_id}"
    got = f"{header.site}/{header.object_id}"
    if got != asked:
        raise IntegrityError(
            f"integrity error: asked for {asked} but the service delivered {got} "
            "(objects swapped on the storage side?); nothing written"
        )
    if receipt is None:
        return
    if header.bound_digest.hex() != receipt.content_digest:
        raise IntegrityError(
            f"integrity error: {asked} has other encrypted content than its receipt "
            f"(log seq {receipt.log_seq}) says; nothing written"
        )
    if sha256 and sha256 != receipt.sha256:
        raise IntegrityError(
            f"integrity error: {asked} is not the version receipted at log seq "
            f"{receipt.log_seq} (sha256 {sha256[:16]}... vs {receipt.sha256[:16]}...: "
            "rolled back?); nothing written"
        )
