"""Wrapping an object's data key for readers, and unwrapping it with a keyring.

Two slot kinds: ``kek`` (AES-KW, RFC 3394, under the site KEK bound to this object by HKDF) and
``x25519`` (an ephemeral X25519 agreement with a peer site's public key, HKDF with the recipient
site and both public keys in ``info``, then AES-KW). Unwrapping checks, in this order: a slot the
keyring can use exists (else *wrong key*), AES-KW integrity (else *tampered*), the key commitment
(else *wrong key*: the key is not this object's), then the header MAC (else *tampered*). Only then
may any frame be decrypted.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from fedcodec.shared.crypto import kdf
from fedcodec.shared.crypto.errors import TamperedObjectError, UnknownKeyError, WrongKeyError
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.crypto.object_header import SLOT_KEK, SLOT_X25519, KeySlot, ObjectHeader


@dataclass(frozen=True)
class UnlockedObject:
    """A verified data key, its derived keys, and the slot it came from."""

    data_key: bytes
    keys: kdf.ObjectKeys
    slot: KeySlot


def kek_slot(data_key: bytes, keyring: SiteKeyring, bound_digest: bytes) -> KeySlot:
    """``data_key`` wrapped under the keyring's current KEK for the object with ``bound_digest``."""
    kek_id = keyring.current_kek_id
    wrapping_key = kdf.kek_wrapping_key(keyring.kek_bytes(kek_id), bound_digest)
    return KeySlot(SLOT_KEK, keyring.site, kek_id, aes_key_wrap(wrapping_key, data_key))


def peer_slot(data_key: bytes, peer_site: str, peer_public: bytes, bound_digest: bytes) -> KeySlot:
    """``data_key`` wrapped for ``peer_site``'s X25519 key with a fresh ephemeral key pair."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(peer_public))
    wrapping_key = kdf.x25519_wrapping_key(
        shared,
        bound_digest,
        recipient_site=peer_site,
        recipient_public=peer_public,
        ephemeral_public=ephemeral_public,
    )
    return KeySlot(
        SLOT_X25519,
        peer_site,
        kdf.identity_id_for(peer_public),
        aes_key_wrap(wrapping_key, data_key),
        ephemeral_public,
    )


def select_slot(header: ObjectHeader, keyring: SiteKeyring) -> KeySlot:
    """The slot this keyring can open: its current KEK, a retired KEK, then its X25519 key."""
    mine = [slot for slot in header.slots if slot.site == keyring.site]
    ranked = sorted(
        (slot for slot in mine if slot.kind == SLOT_KEK and keyring.has_kek(slot.key_id)),
        key=lambda slot: slot.key_id != keyring.current_kek_id,
    )
    ranked += [s for s in mine if s.kind == SLOT_X25519 and s.key_id == keyring.identity_id]
    if ranked:
        return ranked[0]
    wanted = ", ".join(f"{slot.site}:{slot.key_id}" for slot in header.slots)
    raise UnknownKeyError(
        f"wrong key: object {header.object_id!r} opens only with {wanted}; the keyring of "
        f"site {keyring.site!r} holds none of these keys"
    )


def _wrapping_key(slot: KeySlot, header: ObjectHeader, keyring: SiteKeyring) -> bytes:
    if slot.kind == SLOT_KEK:
        return kdf.kek_wrapping_key(keyring.kek_bytes(slot.key_id), header.bound_digest)
    try:
        shared = keyring.x25519_shared_secret(slot.ephemeral_public)
    except ValueError:
        raise TamperedObjectError(
            f"tampered: key slot for {slot.site}:{slot.key_id} in object {header.object_id!r} "
            "has an invalid ephemeral key"
        ) from None
    return kdf.x25519_wrapping_key(
        shared,
        header.bound_digest,
        recipient_site=keyring.site,
        recipient_public=keyring.public_key_bytes(),
        ephemeral_public=slot.ephemeral_public,
    )


def unlock(header: ObjectHeader, keyring: SiteKeyring) -> UnlockedObject:
    """Unwrap and verify the object's data key, or raise wrong-key / tampered errors."""
    slot = select_slot(header, keyring)
    try:
        data_key = aes_key_unwrap(_wrapping_key(slot, header, keyring), slot.wrapped_key)
    except InvalidUnwrap:
        raise TamperedObjectError(
            f"tampered: the data key wrapped for {slot.site}:{slot.key_id} in object "
            f"{header.object_id!r} fails its AES-KW integrity check"
        ) from None
    keys = kdf.derive_object_keys(data_key, header.bound.object_salt)
    if not hmac.compare_digest(keys.commitment, header.key_commitment):
        raise WrongKeyError(
            f"wrong key: the data key from {slot.site}:{slot.key_id} does not match the key "
            f"commitment of object {header.object_id!r}"
        )
    mac = hmac.new(keys.header_mac_key, header.mac_input, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, header.header_mac):
        raise TamperedObjectError(
            f"tampered: key slots of object {header.object_id!r} were altered (header MAC mismatch)"
        )
    return UnlockedObject(data_key, keys, slot)
