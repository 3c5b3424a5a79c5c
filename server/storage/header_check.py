"""The one place the server looks inside an object: its public, keyless envelope header.

The service is zero-knowledge (no keys, no plaintext), but it still refuses anything that is not a
well-formed encrypted object, and it indexes the header's key ids and algorithm so that audits can
report which keys protect what. Everything goes through :func:`read_object_summary`, which wraps
``fedcodec.shared.crypto.envelope.read_header``; :class:`~.service.StorageService` takes the reader
as a parameter so tests can exercise storage rules without the crypto module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fedcodec.server.storage.errors import InvalidObject
from fedcodec.shared.errors import FedcodecError

#: Bytes of an object's start handed to the header parser (the header is far smaller).
HEADER_PREFIX_BYTES = 64 * 1024


@dataclass(frozen=True)
class ObjectSummary:
    """What the server may know about an encrypted object without any key."""

    site: str
    object_id: str
    key_ids: tuple[str, ...]
    algorithm: str
    format_version: int
    created_unix_ms: int = 0  # when the object was encrypted (0 if the header does not say)
    #: Identifies the encrypted content (the header's immutable part); a replacement must keep it.
    content_digest: str = ""


HeaderReader = Callable[[bytes], ObjectSummary]


class StructureCheck:
    """Keyless frame-structure check of a whole object, fed chunk by chunk as it arrives.

    Wraps :class:`fedcodec.shared.crypto.object_validator.ObjectStructureCheck` so a truncated
    object, bytes after the final frame, or a frame that breaks the format's rules is refused at
    put (and reported by ``audit``) as :class:`InvalidObject`, not stored and served later.
    """

    def __init__(self) -> None:
        from fedcodec.shared.crypto.object_validator import ObjectStructureCheck

        self._check = ObjectStructureCheck()

    def feed(self, chunk: bytes) -> None:
        try:
            self._check.feed(chunk)
        except FedcodecError as exc:
            raise InvalidObject(f"not a well-formed encrypted object: {exc}") from None

    def finish(self) -> None:
        try:
            self._check.finish()
        except FedcodecError as exc:
            raise InvalidObject(f"not a well-formed encrypted object: {exc}") from None


def read_object_summary(prefix: bytes) -> ObjectSummary:
    """Parse the public header at the start of an object, or raise :class:`InvalidObject`."""
    from fedcodec.shared.crypto.envelope import read_header

    try:
        header = read_header(prefix)
    except FedcodecError as exc:
        raise InvalidObject(f"not a well-formed encrypted object: {exc}") from None
    return ObjectSummary(
        site=str(header.site),
        object_id=str(header.object_id),
        key_ids=tuple(str(k) for k in header.key_ids),
        algorithm=str(header.algorithm),
        format_version=int(header.format_version),
        created_unix_ms=int(header.created_unix_ms),
        content_digest=header.bound_digest.hex(),
    )
