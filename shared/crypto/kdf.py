"""Every key derivation of the format, with its HKDF-SHA256 label, in one place.

Each derived key or value has its own ASCII ``info`` label so no two uses can ever share key
material: the frame key, the key commitment and the header-MAC key all come from one data key
(DEK) but are independent outputs of HKDF. The labels are part of the on-disk format
(docs/encryption-format.md, "Key derivation"); changing one is a format version change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32

LABEL_FRAME_KEY = b"fedcodec/enc/v1 frame-key"
LABEL_COMMITMENT = b"fedcodec/enc/v1 key-commitment"
LABEL_HEADER_MAC = b"fedcodec/enc/v1 header-mac"
LABEL_KEK_WRAP = b"fedcodec/enc/v1 kek-wrap"
LABEL_X25519_WRAP = b"fedcodec/enc/v1 x25519-wrap"
LABEL_KEK_ID = b"fedcodec/enc/v1 kek-id"
LABEL_X25519_ID = b"fedcodec/enc/v1 x25519-id"
LABEL_DEID_KEY_ID = b"fedcodec/keyring/v1 deid-key-id"


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int = KEY_BYTES) -> bytes:
    """RFC 5869 HKDF (extract + expand) with SHA-256."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


@dataclass(frozen=True)
class ObjectKeys:
    """The three values one object derives from its data key and salt."""

    frame_key: bytes
    commitment: bytes
    header_mac_key: bytes


def derive_object_keys(data_key: bytes, object_salt: bytes) -> ObjectKeys:
    """Frame encryption key, public key commitment and header-MAC key of one object."""
    return ObjectKeys(
        frame_key=hkdf_sha256(data_key, salt=object_salt, info=LABEL_FRAME_KEY),
        commitment=hkdf_sha256(data_key, salt=object_salt, info=LABEL_COMMITMENT),
        header_mac_key=hkdf_sha256(data_key, salt=object_salt, info=LABEL_HEADER_MAC),
    )


def kek_wrapping_key(kek: bytes, bound_digest: bytes) -> bytes:
    """AES-KW key for one object's KEK slot: the KEK bound to this object's header digest.

    AES-KW has no associated data; deriving the wrapping key from the header digest means a
    wrapped key moved into another object's header no longer unwraps there.
    """
    return hkdf_sha256(kek, salt=bound_digest, info=LABEL_KEK_WRAP)


def x25519_wrapping_key(
    shared_secret: bytes,
    bound_digest: bytes,
    *,
    recipient_site: str,
    recipient_public: bytes,
    ephemeral_public: bytes,
) -> bytes:
    """AES-KW key for a peer slot: ECDH output bound to the recipient and to this object."""
    site = recipient_site.encode("utf-8")
    info = (
        LABEL_X25519_WRAP
        + len(site).to_bytes(2, "big")
        + site
        + recipient_public
        + ephemeral_public
    )
    return hkdf_sha256(shared_secret, salt=bound_digest, info=info)


def kek_id_for(kek: bytes) -> str:
    """Public id of a KEK: a fingerprint, so a key file can be checked against its id."""
    return "kek-" + hkdf_sha256(kek, salt=b"", info=LABEL_KEK_ID, length=8).hex()


def deid_key_id_for(deid_key: bytes) -> str:
    """Public id of a site's de-identification key (same construction as a KEK id, own label)."""
    return "deid-" + hkdf_sha256(deid_key, salt=b"", info=LABEL_DEID_KEY_ID, length=8).hex()


def public_key_fingerprint(public_key: bytes) -> str:
    """Full SHA-256 fingerprint (hex) of an X25519 public key, for out-of-band comparison."""
    return hashlib.sha256(LABEL_X25519_ID + public_key).hexdigest()


def identity_id_for(public_key: bytes) -> str:
    """Short public id of a site's X25519 key (first 8 bytes of its fingerprint)."""
    return "x25519-" + public_key_fingerprint(public_key)[:16]
