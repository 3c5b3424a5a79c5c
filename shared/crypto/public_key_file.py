"""The file a site hands to its peers: its name and X25519 public key, self-checking.

A small JSON document (never any secret). It repeats the key id and full fingerprint so a typo or
a damaged copy is caught on import, and so operators can compare the fingerprint out of band (by
phone, in a signed e-mail) before trusting a peer: importing pins the key to the site name.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from fedcodec.shared.crypto import kdf
from fedcodec.shared.crypto.keyring import (
    SiteKeyring,
    validate_site_name,
    validate_x25519_public_key,
)
from fedcodec.shared.errors import CorruptDataError

PUBLIC_KEY_FORMAT = "fedcodec-site-public-key"
PUBLIC_KEY_VERSION = 1


@dataclass(frozen=True)
class SitePublicKey:
    """A peer site's published identity."""

    site: str
    public_key: bytes

    @property
    def key_id(self) -> str:
        return kdf.identity_id_for(self.public_key)

    @property
    def fingerprint(self) -> str:
        return kdf.public_key_fingerprint(self.public_key)


def public_key_document(keyring: SiteKeyring) -> str:
    """The JSON text a site publishes so peers can share objects with it."""
    public = keyring.public_key_bytes()
    document = {
        "format": PUBLIC_KEY_FORMAT,
        "version": PUBLIC_KEY_VERSION,
        "site": keyring.site,
        "algorithm": "X25519",
        "public_key": base64.b64encode(public).decode("ascii"),
        "key_id": kdf.identity_id_for(public),
        "fingerprint": kdf.public_key_fingerprint(public),
    }
    return json.dumps(document, indent=2) + "\n"


def parse_public_key_document(
    text: str | bytes, *, source: str = "public key file"
) -> SitePublicKey:
    """Validate a published key document (format, site name, key, id and fingerprint)."""
    try:
        document = json.loads(text)
        if document["format"] != PUBLIC_KEY_FORMAT or document["version"] != PUBLIC_KEY_VERSION:
            raise ValueError("not a fedcodec site public key")
        if document["algorithm"] != "X25519":
            raise ValueError(f"unsupported algorithm {document['algorithm']!r}")
        public = base64.b64decode(document["public_key"], validate=True)
        site = document["site"]
        key_id, fingerprint = document["key_id"], document["fingerprint"]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CorruptDataError(f"{source} is not a valid site public key ({exc})") from None
    validate_site_name(site)
    validate_x25519_public_key(public, what=f"public key in {source}")
    if key_id != kdf.identity_id_for(public) or fingerprint != kdf.public_key_fingerprint(public):
        raise CorruptDataError(
            f"{source} is damaged: its key id or fingerprint does not match the key"
        )
    return SitePublicKey(site, public)
