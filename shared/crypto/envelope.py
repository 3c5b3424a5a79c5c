"""Envelope encryption of objects: the API the client, the CLI and the storage service call.

An encrypted object is a public header followed by AES-256-GCM frames (docs/encryption-format.md):

* :func:`encrypt_object` / :func:`encrypt_bytes` seal plaintext under a fresh data key (DEK),
  wrapped for the keyring's current KEK;
* :func:`decrypt_object` / :func:`decrypt_bytes` verify the key and every frame as they stream;
* :func:`read_header` parses the header without keys (site, object id, key ids, algorithm);
* :func:`rewrap` (KEK rotation), :func:`share` / :func:`unshare` (peer sites) return a new header
  and never touch the frames: swap it in with :func:`replace_header` or
  :func:`stream_with_header`, which copy the frames after the old header unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

from fedcodec.shared.crypto import kdf
from fedcodec.shared.crypto.chunk_reader import BytesLike, ChunkReader
from fedcodec.shared.crypto.errors import NotAnObjectError
from fedcodec.shared.crypto.frame_stream import FrameOpener, seal_frames
from fedcodec.shared.crypto.key_slots import kek_slot, peer_slot, unlock
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.crypto.object_header import (
    DEFAULT_FRAME_SIZE,
    MAX_FRAME_SIZE,
    MAX_STRING_BYTES,
    MIN_FRAME_SIZE,
    PREFIX_BYTES,
    SALT_BYTES,
    SLOT_X25519,
    BoundFields,
    KeySlot,
    ObjectHeader,
    assemble_header,
    bound_digest_for,
    header_length,
    parse_header,
)
from fedcodec.shared.errors import FedcodecError, UnknownNameError

__all__ = [
    "DEFAULT_FRAME_SIZE",
    "FrameOpener",
    "KeySlot",
    "ObjectHeader",
    "decrypt_bytes",
    "decrypt_object",
    "encrypt_bytes",
    "encrypt_object",
    "read_header",
    "replace_header",
    "rewrap",
    "share",
    "stream_with_header",
    "unshare",
]

Source = Iterable[BytesLike] | BytesLike
DATA_KEY_BYTES = 32


def encrypt_object(
    chunks: Source,
    keyring: SiteKeyring,
    *,
    object_id: str,
    codec: str,
    content_type: str = "application/x-fcz",
    frame_size: int = DEFAULT_FRAME_SIZE,
    created_unix_ms: int | None = None,
) -> Iterator[bytes]:
    """Stream the encrypted object: header first, then one bytes item per frame.

    Arguments are checked now (not on first ``next``); plaintext is read lazily, one frame at a
    time, so memory stays bounded by the frame size whatever the object size.
    """
    if not MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE:
        raise FedcodecError(f"frame size must be {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE} bytes")
    for name, value in (("object id", object_id), ("codec", codec)):
        if not value or len(value.encode("utf-8")) > MAX_STRING_BYTES:
            raise FedcodecError(f"{name} must be 1..{MAX_STRING_BYTES} bytes of UTF-8")
    if len(content_type.encode("utf-8")) > MAX_STRING_BYTES:
        raise FedcodecError(f"content type must be at most {MAX_STRING_BYTES} bytes")
    data_key = os.urandom(DATA_KEY_BYTES)
    object_salt = os.urandom(SALT_BYTES)
    keys = kdf.derive_object_keys(data_key, object_salt)
    bound = BoundFields(
        frame_size=frame_size,
        created_unix_ms=int(time.time() * 1000) if created_unix_ms is None else created_unix_ms,
        object_salt=object_salt,
        key_commitment=keys.commitment,
        site=keyring.site,
        object_id=object_id,
        codec=codec,
        content_type=content_type,
        origin_kek_id=keyring.current_kek_id,
    )
    bound_digest = bound_digest_for(bound)
    header = assemble_header(
        bound, [kek_slot(data_key, keyring, bound_digest)], keys.header_mac_key
    )
    frames = seal_frames(ChunkReader(chunks), keys.frame_key, bound_digest, frame_size)
    return _prepend(header, frames)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def encrypt_bytes(
    plaintext: BytesLike,
    keyring: SiteKeyring,
    *,
    object_id: str,
    codec: str,
    content_type: str = "application/x-fcz",
    frame_size: int = DEFAULT_FRAME_SIZE,
    created_unix_ms: int | None = None,
) -> bytes:
    """The whole encrypted object as one ``bytes`` (see :func:`encrypt_object`)."""
    return b"".join(
        encrypt_object(
            plaintext,
            keyring,
            object_id=object_id,
            codec=codec,
            content_type=content_type,
            frame_size=frame_size,
            created_unix_ms=created_unix_ms,
        )
    )


def read_header(blob_prefix: BytesLike) -> ObjectHeader:
    """Parse the keyless public header from the first bytes of an object (64 KiB always suffice).

    Checks magic, version, limits, the header checksum and every field's syntax; says nothing
    about keys or frames.
    """
    if not len(blob_prefix):
        raise NotAnObjectError("not an encrypted fedcodec object (empty input)")
    return parse_header(blob_prefix)


def _read_header_from(reader: ChunkReader) -> ObjectHeader:
    buffer = bytearray(reader.read(PREFIX_BYTES))
    if not buffer:
        raise NotAnObjectError("not an encrypted fedcodec object (empty input)")
    total = header_length(buffer)
    if total is None and len(buffer) == PREFIX_BYTES:
        bound_length = int.from_bytes(buffer[10:14], "big")
        buffer += reader.read(bound_length + 4)
        total = header_length(buffer)
    if total is not None and len(buffer) < total:
        buffer += reader.read(total - len(buffer))
    return parse_header(buffer)


def decrypt_object(chunks: Source, keyring: SiteKeyring) -> tuple[ObjectHeader, FrameOpener]:
    """Header and a lazy iterator of verified plaintext frames.

    The key is checked before this returns (wrong key / tampered header raise here). Frame
    errors raise from the iterator; the content is complete and verified only when the iterator
    is exhausted without error, after which ``iterator.content_sha256`` holds its SHA-256.
    """
    reader = ChunkReader(chunks)
    header = _read_header_from(reader)
    unlocked = unlock(header, keyring)
    frames = FrameOpener(
        reader, unlocked.keys.frame_key, header.bound_digest, header.frame_size, header.object_id
    )
    return header, frames


def decrypt_bytes(blob: BytesLike, keyring: SiteKeyring) -> tuple[ObjectHeader, bytes]:
    """Header and the whole verified plaintext of an in-memory object."""
    header, frames = decrypt_object(blob, keyring)
    return header, b"".join(frames)


def _as_header(header: ObjectHeader | BytesLike) -> ObjectHeader:
    return header if isinstance(header, ObjectHeader) else read_header(header)


def rewrap(header: ObjectHeader | BytesLike, keyring: SiteKeyring) -> ObjectHeader:
    """A header whose slot for ``keyring.site`` uses its current KEK (after :meth:`rotate`).

    Any KEK the keyring still holds (current or retired) or its X25519 key may open the object;
    all of the site's slots are replaced by one under the current KEK. Peer slots are kept.
    The frames do not change: the data key is the same.
    """
    header = _as_header(header)
    unlocked = unlock(header, keyring)
    others = [slot for slot in header.slots if slot.site != keyring.site]
    mine = kek_slot(unlocked.data_key, keyring, header.bound_digest)
    slots = [mine, *others] if keyring.site == header.site else [*others, mine]
    return parse_header(assemble_header(header.bound, slots, unlocked.keys.header_mac_key))


def share(header: ObjectHeader | BytesLike, keyring: SiteKeyring, peer_site: str) -> ObjectHeader:
    """A header that ``peer_site`` can also open, wrapped for its pinned X25519 public key.

    Replaces an earlier X25519 slot of ``peer_site`` (e.g. after it changed its identity key);
    KEK slots it made itself (by rewrapping) are kept.
    """
    header = _as_header(header)
    if peer_site == keyring.site:
        raise FedcodecError(f"site {peer_site!r} cannot share an object with itself")
    peer_public = keyring.peer_public_key(peer_site)
    unlocked = unlock(header, keyring)
    slots = [s for s in header.slots if not (s.site == peer_site and s.kind == SLOT_X25519)]
    slots.append(peer_slot(unlocked.data_key, peer_site, peer_public, header.bound_digest))
    return parse_header(assemble_header(header.bound, slots, unlocked.keys.header_mac_key))


def unshare(
    header: ObjectHeader | BytesLike, keyring: SiteKeyring, peer_site: str
) -> ObjectHeader:
    """A header without ``peer_site``'s slots (a copy it already downloaded stays readable)."""
    header = _as_header(header)
    if peer_site in (keyring.site, header.site):
        raise FedcodecError(
            f"cannot remove the key slots of site {peer_site!r} (the owner's or your own)"
        )
    if not any(slot.site == peer_site for slot in header.slots):
        raise UnknownNameError(f"object {header.object_id!r} is not shared with {peer_site!r}")
    unlocked = unlock(header, keyring)
    slots = [slot for slot in header.slots if slot.site != peer_site]
    return parse_header(assemble_header(header.bound, slots, unlocked.keys.header_mac_key))


def replace_header(blob: BytesLike, new_header: ObjectHeader) -> bytes:
    """``blob`` with its header swapped for ``new_header`` (same object; frames copied as is)."""
    return b"".join(stream_with_header(blob, new_header))


def stream_with_header(chunks: Source, new_header: ObjectHeader) -> Iterator[bytes]:
    """Stream an object with its header replaced, reading the old one from ``chunks``.

    Refuses a header of another object (its bound digest must match), so frames can never be
    attached to a header they were not sealed under.
    """
    reader = ChunkReader(chunks)
    old = _read_header_from(reader)
    if old.bound_digest != new_header.bound_digest:
        raise FedcodecError(
            f"header of object {new_header.object_id!r} does not belong to object "
            f"{old.object_id!r}"
        )
    return _prepend(new_header.raw, _drain(reader))


def _drain(reader: ChunkReader, size: int = 1 << 20) -> Iterator[bytes]:
    while piece := reader.read(size):
        yield bytes(piece)
