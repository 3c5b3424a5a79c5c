"""The public header of an encrypted object: byte layout, parsing, and assembly.

The header is readable without any key (the storage service lists site, object id, key ids and
algorithm from it) and has two parts with different lifetimes:

* the **bound block** never changes after encryption; its SHA-256 digest (with the magic and
  version before it) is the associated data of every frame, so frames cannot move between
  objects and no bound field can be edited;
* the **key slots** hold the data key wrapped for each reader (the site KEK, peer sites). They
  change on rotation and sharing, so they are *not* in the frames' associated data; instead a MAC
  keyed from the data key covers the whole header, and a plain SHA-256 checksum at the end lets
  anyone (the keyless storage service too) detect accidental damage.

Replacing the slots rewrites only the header; the frames after it are untouched. Layout tables:
docs/encryption-format.md.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from fedcodec.shared.crypto.errors import (
    NotAnObjectError,
    TamperedObjectError,
    TruncatedObjectError,
)
from fedcodec.shared.errors import CorruptDataError

MAGIC = b"\x89FCE\r\n\x1a\n"
FORMAT_VERSION = 1
SUITE_AES256GCM_HKDF_KW_X25519 = 1
ALGORITHMS = {SUITE_AES256GCM_HKDF_KW_X25519: "AES-256-GCM-STREAM/HKDF-SHA256/AES-KW/X25519"}

SLOT_KEK = 1
SLOT_X25519 = 2
SLOT_KIND_NAMES = {SLOT_KEK: "kek", SLOT_X25519: "x25519"}

PREFIX_BYTES = 14  # magic 8 + version u16 + bound length u32
DIGEST_BYTES = 32
MAC_BYTES = 32
SALT_BYTES = 32
WRAPPED_KEY_BYTES = 40  # AES-KW of a 32-byte data key
X25519_PUBLIC_BYTES = 32
MAX_HEADER_BYTES = 64 * 1024
MAX_BOUND_BYTES = 8 * 1024
MAX_STRING_BYTES = 1024
MAX_SLOTS = 255
MIN_FRAME_SIZE = 1
MAX_FRAME_SIZE = 64 * 1024 * 1024
DEFAULT_FRAME_SIZE = 1024 * 1024

_BOUND_FIXED = struct.Struct(">HIQ")  # suite, frame size, created (unix ms)


@dataclass(frozen=True)
class KeySlot:
    """The data key wrapped for one reader: a site KEK (``kek``) or a peer's X25519 key."""

    kind: int
    site: str
    key_id: str
    wrapped_key: bytes
    ephemeral_public: bytes = b""

    @property
    def kind_name(self) -> str:
        return SLOT_KIND_NAMES[self.kind]

    def encode(self) -> bytes:
        body = _str16(self.site) + _str16(self.key_id)
        if self.kind == SLOT_X25519:
            body += self.ephemeral_public
        body += self.wrapped_key
        return struct.pack(">BH", self.kind, len(body)) + body


@dataclass(frozen=True)
class BoundFields:
    """The immutable half of the header, authenticated into every frame."""

    frame_size: int
    created_unix_ms: int
    object_salt: bytes
    key_commitment: bytes
    site: str
    object_id: str
    codec: str
    content_type: str
    origin_kek_id: str
    suite: int = SUITE_AES256GCM_HKDF_KW_X25519

    def encode(self) -> bytes:
        return (
            _BOUND_FIXED.pack(self.suite, self.frame_size, self.created_unix_ms)
            + self.object_salt
            + self.key_commitment
            + b"".join(
                _str16(s)
                for s in (
                    self.site,
                    self.object_id,
                    self.codec,
                    self.content_type,
                    self.origin_kek_id,
                )
            )
        )


@dataclass(frozen=True)
class ObjectHeader:
    """A parsed header. ``raw`` is its exact bytes; frames start at ``length`` in the object."""

    bound: BoundFields
    slots: tuple[KeySlot, ...]
    header_mac: bytes
    raw: bytes = field(repr=False)
    format_version: int = FORMAT_VERSION

    # Flat access to the bound fields (what callers list and index).
    @property
    def site(self) -> str:
        return self.bound.site

    @property
    def object_id(self) -> str:
        return self.bound.object_id

    @property
    def codec(self) -> str:
        return self.bound.codec

    @property
    def content_type(self) -> str:
        return self.bound.content_type

    @property
    def frame_size(self) -> int:
        return self.bound.frame_size

    @property
    def created_unix_ms(self) -> int:
        return self.bound.created_unix_ms

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.bound.created_unix_ms / 1000, tz=UTC)

    @property
    def origin_kek_id(self) -> str:
        return self.bound.origin_kek_id

    @property
    def key_commitment(self) -> bytes:
        return self.bound.key_commitment

    @property
    def algorithm(self) -> str:
        return ALGORITHMS[self.bound.suite]

    @property
    def length(self) -> int:
        return len(self.raw)

    @cached_property
    def bound_digest(self) -> bytes:
        """SHA-256 of magic, version, bound length and bound block: every frame's header AAD."""
        (bound_length,) = struct.unpack_from(">I", self.raw, 10)
        return hashlib.sha256(self.raw[: PREFIX_BYTES + bound_length]).digest()

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Ids of every key that can open the object (KEK ids and peer X25519 key ids)."""
        return tuple(slot.key_id for slot in self.slots)

    @property
    def kek_id(self) -> str | None:
        """The owning site's current wrapping KEK id (None if the owner has no KEK slot)."""
        for slot in self.slots:
            if slot.kind == SLOT_KEK and slot.site == self.site:
                return slot.key_id
        return None

    @property
    def recipient_sites(self) -> tuple[str, ...]:
        """Every site that holds a key slot, the owner first."""
        sites = [self.site] if any(s.site == self.site for s in self.slots) else []
        sites += sorted({s.site for s in self.slots} - {self.site})
        return tuple(sites)

    @property
    def mac_input(self) -> bytes:
        return self.raw[: -(MAC_BYTES + DIGEST_BYTES)]


def bound_digest_for(bound: BoundFields) -> bytes:
    """The digest :attr:`ObjectHeader.bound_digest` will have for a header with ``bound``."""
    block = bound.encode()
    return hashlib.sha256(MAGIC + struct.pack(">HI", FORMAT_VERSION, len(block)) + block).digest()


def assemble_header(bound: BoundFields, slots: list[KeySlot], header_mac_key: bytes) -> bytes:
    """Header bytes for ``bound`` and ``slots``: MAC under ``header_mac_key``, then checksum."""
    if not 1 <= len(slots) <= MAX_SLOTS:
        raise ValueError(f"an object needs 1..{MAX_SLOTS} key slots, got {len(slots)}")
    bound_block = bound.encode()
    if len(bound_block) > MAX_BOUND_BYTES:
        raise ValueError(f"header fields too long ({len(bound_block)} > {MAX_BOUND_BYTES} bytes)")
    slots_block = bytes([len(slots)]) + b"".join(slot.encode() for slot in slots)
    head = (
        MAGIC
        + struct.pack(">HI", FORMAT_VERSION, len(bound_block))
        + bound_block
        + struct.pack(">I", len(slots_block))
        + slots_block
    )
    head += hmac.new(header_mac_key, head, hashlib.sha256).digest()
    head += hashlib.sha256(head).digest()
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError(f"header too large ({len(head)} > {MAX_HEADER_BYTES} bytes)")
    return head


def header_length(prefix: bytes | bytearray | memoryview) -> int | None:
    """Total header length if ``prefix`` holds enough to know it, else None.

    Raises :class:`NotAnObjectError` or :class:`CorruptDataError` as soon as the prefix shows the
    bytes cannot be an object of this format.
    """
    prefix = bytes(prefix[: PREFIX_BYTES + MAX_BOUND_BYTES + 4])
    probe = prefix[: len(MAGIC)]
    if probe != MAGIC[: len(probe)]:
        raise NotAnObjectError("not an encrypted fedcodec object (bad magic bytes)")
    if len(prefix) < PREFIX_BYTES:
        return None
    version, bound_length = struct.unpack_from(">HI", prefix, len(MAGIC))
    if version != FORMAT_VERSION:
        raise CorruptDataError(
            f"unsupported encrypted-object format version {version} "
            f"(this build reads version {FORMAT_VERSION})"
        )
    if bound_length > MAX_BOUND_BYTES:
        raise TamperedObjectError(
            f"malformed object header: bound block of {bound_length} bytes exceeds "
            f"{MAX_BOUND_BYTES}"
        )
    if len(prefix) < PREFIX_BYTES + bound_length + 4:
        return None
    (slots_length,) = struct.unpack_from(">I", prefix, PREFIX_BYTES + bound_length)
    total = PREFIX_BYTES + bound_length + 4 + slots_length + MAC_BYTES + DIGEST_BYTES
    if total > MAX_HEADER_BYTES:
        raise TamperedObjectError(
            f"malformed object header: {total} bytes exceeds {MAX_HEADER_BYTES}"
        )
    return total


def parse_header(prefix: bytes | bytearray | memoryview) -> ObjectHeader:
    """Parse and checksum-verify the header at the start of ``prefix`` (keyless)."""
    total = header_length(prefix)
    if total is None or len(prefix) < total:
        raise TruncatedObjectError(
            f"object header is truncated ({len(prefix)} bytes"
            + (f" of {total})" if total is not None else ")")
        )
    raw = bytes(prefix[:total])
    expected = hashlib.sha256(raw[:-DIGEST_BYTES]).digest()
    if not hmac.compare_digest(expected, raw[-DIGEST_BYTES:]):
        raise TamperedObjectError("tampered or damaged object header: checksum mismatch")
    (bound_length,) = struct.unpack_from(">I", raw, 10)
    bound = _parse_bound(_Cursor(raw[PREFIX_BYTES : PREFIX_BYTES + bound_length], "bound block"))
    slots_start = PREFIX_BYTES + bound_length + 4
    slots = _parse_slots(_Cursor(raw[slots_start : total - MAC_BYTES - DIGEST_BYTES], "key slots"))
    return ObjectHeader(
        bound=bound,
        slots=slots,
        header_mac=raw[-(MAC_BYTES + DIGEST_BYTES) : -DIGEST_BYTES],
        raw=raw,
    )


def _parse_bound(cursor: _Cursor) -> BoundFields:
    suite, frame_size, created = _BOUND_FIXED.unpack(cursor.take(_BOUND_FIXED.size))
    if suite not in ALGORITHMS:
        raise TamperedObjectError(f"malformed object header: unknown algorithm suite {suite}")
    if not MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE:
        raise TamperedObjectError(f"malformed object header: frame size {frame_size} out of range")
    bound = BoundFields(
        suite=suite,
        frame_size=frame_size,
        created_unix_ms=created,
        object_salt=cursor.take(SALT_BYTES),
        key_commitment=cursor.take(DIGEST_BYTES),
        site=cursor.str16(),
        object_id=cursor.str16(),
        codec=cursor.str16(),
        content_type=cursor.str16(),
        origin_kek_id=cursor.str16(),
    )
    cursor.expect_end()
    if not bound.object_id or not bound.codec:
        raise TamperedObjectError("malformed object header: empty object id or codec")
    return bound


def _parse_slots(cursor: _Cursor) -> tuple[KeySlot, ...]:
    (count,) = cursor.take(1)
    if count == 0:
        raise TamperedObjectError("malformed object header: no key slots")
    slots = []
    for _ in range(count):
        kind, body_length = struct.unpack(">BH", cursor.take(3))
        body = _Cursor(cursor.take(body_length), "key slot")
        if kind not in SLOT_KIND_NAMES:
            raise TamperedObjectError(f"malformed object header: unknown key slot kind {kind}")
        site, key_id = body.str16(), body.str16()
        ephemeral = body.take(X25519_PUBLIC_BYTES) if kind == SLOT_X25519 else b""
        slots.append(KeySlot(kind, site, key_id, body.take(WRAPPED_KEY_BYTES), ephemeral))
        body.expect_end()
    cursor.expect_end()
    return tuple(slots)


def _str16(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > MAX_STRING_BYTES:
        raise ValueError(f"header string too long ({len(data)} > {MAX_STRING_BYTES} bytes)")
    return struct.pack(">H", len(data)) + data


class _Cursor:
    """Bounds-checked sequential reads; any overrun is a malformed header, never IndexError."""

    def __init__(self, data: bytes, where: str) -> None:
        self._data = data
        self._pos = 0
        self._where = where

    def take(self, size: int) -> bytes:
        if self._pos + size > len(self._data):
            raise TamperedObjectError(f"malformed object header: {self._where} is too short")
        piece = self._data[self._pos : self._pos + size]
        self._pos += size
        return piece

    def str16(self) -> str:
        (size,) = struct.unpack(">H", self.take(2))
        if size > MAX_STRING_BYTES:
            raise TamperedObjectError(f"malformed object header: string in {self._where} too long")
        try:
            return self.take(size).decode("utf-8")
        except UnicodeDecodeError:
            raise TamperedObjectError(
                f"malformed object header: {self._where} holds invalid UTF-8"
            ) from None

    def expect_end(self) -> None:
        if self._pos != len(self._data):
            raise TamperedObjectError(
                f"malformed object header: {len(self._data) - self._pos} stray bytes in "
                f"{self._where}"
            )
