"""A site's keyring: its key-encryption keys (KEKs), X25519 identity, de-identification key,
and pinned peer keys.

Nothing else in fedcodec reads key files. On disk a keyring is one owner-only directory::

    <dir>/                      0700
      keyring.json              0600  metadata: site, KEK ids + dates + status, history, peers
      kek-<16 hex>.key          0600  one 32-byte AES-256 KEK per file (current and retired)
      identity-x25519.key       0600  the site's 32-byte X25519 private key
      deid-uid.key              0600  the site's de-identification key (HMAC key of UID mapping)
      .lock                           flock taken while the keyring changes

A KEK id is a fingerprint of the key (HKDF, see ``kdf.kek_id_for``), so a key file that does not
match its id is detected on open. Rotation adds a new current KEK and marks the previous one
retired; retired KEKs stay to unwrap old objects until those are rewrapped. Peer public keys are
pinned: importing a different key for a known site needs ``replace=True``. Key bytes are never
printed or logged.

The de-identification key keys the UID and Patient ID mapping (``fedcodec.shared.deid``). Like
the identity key it is made with the keyring and never rotated: the mapping must stay the same
for the life of the site (the same study always gets the same new UIDs), and a new key would map
every study anew. It never leaves the site: ``export-public`` carries only the public key, and a
backup of the keyring directory carries it with the other secrets. Keyrings made before it
existed get one with :meth:`SiteKeyring.add_deid_key` (new, or a legacy key file imported).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from fedcodec.shared.crypto import kdf
from fedcodec.shared.crypto.errors import KeyringError, UnknownKeyError
from fedcodec.shared.crypto.private_files import (
    check_private,
    ensure_private_dir,
    exclusive_lock,
    read_private_file,
    write_private_file,
)
from fedcodec.shared.errors import FedcodecError, UnknownNameError

METADATA_FILE = "keyring.json"
IDENTITY_FILE = "identity-x25519.key"
DEID_KEY_FILE = "deid-uid.key"
DEID_KEY_LIMITS = (32, 1024)
"""Smallest and largest de-identification key (bytes): new keys are 32; an imported legacy key
is kept whole, since its exact bytes define the site's existing mapping."""
KEYRING_FORMAT = "fedcodec-keyring"
KEYRING_VERSION = 1
KEY_BYTES = 32
SITE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class KekRecord:
    """Public facts about one KEK (never the key itself)."""

    kek_id: str
    created_at: str
    retired_at: str | None

    @property
    def status(self) -> str:
        return "retired" if self.retired_at else "current"


@dataclass(frozen=True)
class PeerRecord:
    """A peer site's pinned X25519 public key."""

    site: str
    public_key: bytes
    key_id: str
    imported_at: str

    @property
    def fingerprint(self) -> str:
        return kdf.public_key_fingerprint(self.public_key)


def validate_site_name(site: str) -> str:
    """A site name: 1-64 of letters, digits, ``.``, ``_``, ``-``, starting alphanumeric."""
    if not isinstance(site, str) or not SITE_PATTERN.fullmatch(site):
        raise FedcodecError(
            f"invalid site name {site!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return site


def validate_x25519_public_key(public_key: bytes, *, what: str) -> bytes:
    """Reject anything that is not a usable X25519 public key (wrong size or low order)."""
    if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != KEY_BYTES:
        raise FedcodecError(f"{what} must be a {KEY_BYTES}-byte X25519 public key")
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(bytes(public_key)))
    except ValueError:
        raise FedcodecError(
            f"{what} is a low-order X25519 point: no shared secret can be agreed with it"
        ) from None
    return bytes(public_key)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SiteKeyring:
    """One site's keys, loaded from (and saved to) a private directory.

    Use :meth:`create` or :meth:`open`; the constructor only wraps already-validated state.
    """

    def __init__(
        self,
        path: Path,
        metadata: dict[str, Any],
        keks: dict[str, bytes],
        identity: X25519PrivateKey,
        deid_key: bytes | None,
    ) -> None:
        self._path = path
        self._metadata = metadata
        self._keks = keks
        self._identity = identity
        self._deid_key = deid_key

    # ----------------------------------------------------------------- creation and loading
    @classmethod
    def create(cls, path: Path, site: str) -> SiteKeyring:
        """A new keyring for ``site`` in directory ``path`` (which must not hold one yet)."""
        path = Path(path).expanduser()
        validate_site_name(site)
        if (path / METADATA_FILE).exists():
            raise KeyringError(f"a keyring already exists at {path}")
        if path.exists() and not path.is_dir():
            raise KeyringError(f"keyring path {path} exists and is not a directory")
        ensure_private_dir(path)
        with exclusive_lock(path):
            if (path / METADATA_FILE).exists():
                raise KeyringError(f"a keyring already exists at {path}")
            kek = os.urandom(KEY_BYTES)
            kek_id = kdf.kek_id_for(kek)
            identity = X25519PrivateKey.generate()
            public = _public_bytes(identity)
            deid_key = os.urandom(KEY_BYTES)
            now = _now()
            metadata = {
                "format": KEYRING_FORMAT,
                "version": KEYRING_VERSION,
                "site": site,
                "created_at": now,
                "current_kek": kek_id,
                "keks": [{"id": kek_id, "created_at": now, "retired_at": None}],
                "identity": {
                    "id": kdf.identity_id_for(public),
                    "public_key": _b64(public),
                    "created_at": now,
                },
                "deid": {"id": kdf.deid_key_id_for(deid_key), "created_at": now},
                "peers": {},
                "history": [{"at": now, "event": "init", "kek": kek_id}],
            }
            write_private_file(path / DEID_KEY_FILE, deid_key)
            write_private_file(path / f"{kek_id}.key", kek)
            write_private_file(
                path / IDENTITY_FILE,
                identity.private_bytes(
                    serialization.Encoding.Raw,
                    serialization.PrivateFormat.Raw,
                    serialization.NoEncryption(),
                ),
            )
            # The metadata is written last: its presence marks a complete keyring.
            write_private_file(path / METADATA_FILE, _encode_metadata(metadata))
        return cls(path, metadata, {kek_id: kek}, identity, deid_key)

    @classmethod
    def open(cls, path: Path) -> SiteKeyring:
        """Load and verify the keyring in ``path`` (permissions, ids, key sizes)."""
        path = Path(path).expanduser()
        if not (path / METADATA_FILE).exists():
            raise KeyringError(
                f"no keyring at {path}; create one with: fedcodec keys init --site NAME"
            )
        return cls(path, *_load(path))

    def _reload(self) -> None:
        self._metadata, self._keks, self._identity, self._deid_key = _load(self._path)

    # ----------------------------------------------------------------------- public facts
    @property
    def path(self) -> Path:
        return self._path

    @property
    def site(self) -> str:
        return self._metadata["site"]

    @property
    def created_at(self) -> str:
        return self._metadata["created_at"]

    @property
    def current_kek_id(self) -> str:
        return self._metadata["current_kek"]

    @property
    def kek_ids(self) -> tuple[str, ...]:
        """Every KEK id held, oldest first (the last one is current)."""
        return tuple(entry["id"] for entry in self._metadata["keks"])

    @property
    def kek_records(self) -> tuple[KekRecord, ...]:
        return tuple(
            KekRecord(entry["id"], entry["created_at"], entry["retired_at"])
            for entry in self._metadata["keks"]
        )

    @property
    def identity_id(self) -> str:
        return self._metadata["identity"]["id"]

    def public_key_bytes(self) -> bytes:
        """This site's raw 32-byte X25519 public key (safe to publish)."""
        return _public_bytes(self._identity)

    @property
    def deid_key_id(self) -> str | None:
        """Id of the de-identification key (None in a keyring made before it existed)."""
        deid = self._metadata.get("deid")
        return deid["id"] if deid else None

    @property
    def deid_key_created_at(self) -> str | None:
        deid = self._metadata.get("deid")
        return deid["created_at"] if deid else None

    @property
    def peers(self) -> Mapping[str, bytes]:
        """Pinned peer public keys by site (read-only view)."""
        return MappingProxyType(
            {site: base64.b64decode(p["public_key"]) for site, p in self._metadata["peers"].items()}
        )

    @property
    def peer_records(self) -> tuple[PeerRecord, ...]:
        return tuple(
            PeerRecord(site, base64.b64decode(p["public_key"]), p["id"], p["imported_at"])
            for site, p in sorted(self._metadata["peers"].items())
        )

    @property
    def history(self) -> tuple[dict[str, str], ...]:
        return tuple(dict(event) for event in self._metadata["history"])

    # -------------------------------------------------------------------------- changes
    def rotate(self) -> str:
        """Make a new current KEK, retire the previous one (kept for old objects); new id."""
        with exclusive_lock(self._path):
            self._reload()
            kek = os.urandom(KEY_BYTES)
            kek_id = kdf.kek_id_for(kek)
            now = _now()
            previous = self._metadata["current_kek"]
            for entry in self._metadata["keks"]:
                if entry["retired_at"] is None:
                    entry["retired_at"] = now
            self._metadata["keks"].append({"id": kek_id, "created_at": now, "retired_at": None})
            self._metadata["current_kek"] = kek_id
            self._metadata["history"].append(
                {"at": now, "event": "rotate", "from": previous, "to": kek_id}
            )
            write_private_file(self._path / f"{kek_id}.key", kek)
            write_private_file(self._path / METADATA_FILE, _encode_metadata(self._metadata))
            self._keks[kek_id] = kek
        return kek_id

    def add_deid_key(self, legacy_key_file: Path | None = None) -> str:
        """Give a keyring made before de-identification keys existed one; its id.

        New and random, or the key of a legacy ``fedcodec deid --key-file`` file (64 hex
        characters, or raw bytes; owner-only), so the site's existing mapping carries on. A
        keyring that has one refuses: replacing it would change every mapping.
        """
        key = None if legacy_key_file is None else _read_legacy_deid_key(Path(legacy_key_file))
        with exclusive_lock(self._path):
            self._reload()
            if self._deid_key is not None:
                raise KeyringError(
                    f"keyring of site {self.site!r} already has de-identification key "
                    f"{self.deid_key_id}; it is never replaced (that would change every mapping)"
                )
            key = os.urandom(KEY_BYTES) if key is None else key
            key_id = kdf.deid_key_id_for(key)
            now = _now()
            self._metadata["deid"] = {"id": key_id, "created_at": now}
            event = "add-deid-key" if legacy_key_file is None else "import-deid-key"
            self._metadata["history"].append({"at": now, "event": event, "key": key_id})
            write_private_file(self._path / DEID_KEY_FILE, key)
            write_private_file(self._path / METADATA_FILE, _encode_metadata(self._metadata))
            self._deid_key = key
        return key_id

    def import_peer(self, site: str, public_key: bytes, *, replace: bool = False) -> PeerRecord:
        """Pin ``site``'s X25519 public key; a different key for a known site needs ``replace``."""
        validate_site_name(site)
        if site == self.site:
            raise FedcodecError(f"cannot import site {site!r} as a peer of itself")
        public_key = validate_x25519_public_key(public_key, what=f"public key of site {site!r}")
        key_id = kdf.identity_id_for(public_key)
        with exclusive_lock(self._path):
            self._reload()
            known = self._metadata["peers"].get(site)
            if known and known["id"] != key_id and not replace:
                raise FedcodecError(
                    f"peer site {site!r} is pinned to key {known['id']}, not {key_id}; "
                    "verify the new key out of band, then import it with replace"
                )
            now = _now()
            self._metadata["peers"][site] = {
                "id": key_id,
                "public_key": _b64(public_key),
                "imported_at": now,
            }
            event = "replace-peer" if known and known["id"] != key_id else "import-peer"
            self._metadata["history"].append(
                {"at": now, "event": event, "site": site, "key": key_id}
            )
            write_private_file(self._path / METADATA_FILE, _encode_metadata(self._metadata))
        return PeerRecord(site, public_key, key_id, now)

    # ------------------------------------------------ key use (fedcodec.shared.crypto only)
    def has_kek(self, kek_id: str) -> bool:
        return kek_id in self._keks

    def kek_bytes(self, kek_id: str) -> bytes:
        """Raw KEK for the envelope code; never print, log or store it elsewhere."""
        try:
            return self._keks[kek_id]
        except KeyError:
            raise UnknownKeyError(
                f"wrong key: keyring of site {self.site!r} has no KEK {kek_id}"
            ) from None

    def deid_key_bytes(self) -> bytes:
        """Raw de-identification key for ``fedcodec.shared.deid``; never print, log or store it."""
        if self._deid_key is None:
            raise KeyringError(
                f"keyring of site {self.site!r} has no de-identification key (made before they "
                "existed); add one with: fedcodec keys add-deid-key (--from OLD_KEY_FILE to keep "
                "an existing mapping)"
            )
        return self._deid_key

    def peer_public_key(self, site: str) -> bytes:
        try:
            return base64.b64decode(self._metadata["peers"][site]["public_key"])
        except KeyError:
            raise UnknownNameError(
                f"unknown peer site {site!r}: import its public key first "
                "(fedcodec keys import-peer FILE)"
            ) from None

    def x25519_shared_secret(self, peer_public: bytes) -> bytes:
        """X25519 of the site identity with ``peer_public`` (rejects low-order points)."""
        return self._identity.exchange(X25519PublicKey.from_public_bytes(peer_public))

    def __repr__(self) -> str:
        return f"SiteKeyring(site={self.site!r}, path={str(self._path)!r})"


def _public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _encode_metadata(metadata: dict[str, Any]) -> bytes:
    return (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _load(
    path: Path,
) -> tuple[dict[str, Any], dict[str, bytes], X25519PrivateKey, bytes | None]:
    check_private(path, what="keyring directory")
    metadata_path = path / METADATA_FILE
    try:
        text = read_private_file(metadata_path, what="keyring metadata", secret=False)
        metadata = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyringError(f"keyring metadata {metadata_path} is not valid JSON") from None
    try:
        _check_metadata(metadata)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise KeyringError(f"keyring metadata {metadata_path} is malformed ({exc})") from None
    keks = {}
    for entry in metadata["keks"]:
        kek_path = path / f"{entry['id']}.key"
        kek = read_private_file(kek_path, what="KEK file")
        if len(kek) != KEY_BYTES or kdf.kek_id_for(kek) != entry["id"]:
            raise KeyringError(f"KEK file {kek_path} does not match its id (damaged or replaced)")
        keks[entry["id"]] = kek
    identity_path = path / IDENTITY_FILE
    raw = read_private_file(identity_path, what="identity key file")
    if len(raw) != KEY_BYTES:
        raise KeyringError(f"identity key file {identity_path} is not a 32-byte X25519 key")
    identity = X25519PrivateKey.from_private_bytes(raw)
    if _b64(_public_bytes(identity)) != metadata["identity"]["public_key"]:
        raise KeyringError(
            f"identity key file {identity_path} does not match the keyring's public key"
        )
    return metadata, keks, identity, _load_deid_key(path, metadata.get("deid"))


def _load_deid_key(path: Path, record: dict[str, Any] | None) -> bytes | None:
    if record is None:
        return None
    key_path = path / DEID_KEY_FILE
    key = read_private_file(key_path, what="de-identification key file")
    if not _deid_key_size_ok(key) or kdf.deid_key_id_for(key) != record["id"]:
        raise KeyringError(
            f"de-identification key file {key_path} does not match its id (damaged or replaced)"
        )
    return key


def _deid_key_size_ok(key: bytes) -> bool:
    return DEID_KEY_LIMITS[0] <= len(key) <= DEID_KEY_LIMITS[1]


def _read_legacy_deid_key(path: Path) -> bytes:
    """The key of a legacy ``--key-file``: hex text (as ``--create-key`` wrote it) or raw bytes."""
    raw = read_private_file(path, what="legacy de-identification key file")
    try:
        key = bytes.fromhex(raw.strip().decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if not _deid_key_size_ok(key):
        raise KeyringError(
            f"legacy key file {path} holds {len(key)} bytes; a de-identification key has "
            f"{DEID_KEY_LIMITS[0]} to {DEID_KEY_LIMITS[1]}"
        )
    return key


def _check_metadata(metadata: dict[str, Any]) -> None:
    """Raise KeyError/TypeError/ValueError for anything the keyring code could trip on later."""
    if metadata["format"] != KEYRING_FORMAT or metadata["version"] != KEYRING_VERSION:
        raise ValueError(f"not a {KEYRING_FORMAT} v{KEYRING_VERSION} file")
    if not isinstance(metadata["site"], str) or not SITE_PATTERN.fullmatch(metadata["site"]):
        raise ValueError("invalid site name")
    ids = [entry["id"] for entry in metadata["keks"]]
    if not ids or len(set(ids)) != len(ids):
        raise ValueError("KEK list is empty or has duplicates")
    for entry in metadata["keks"]:
        if not re.fullmatch(r"kek-[0-9a-f]{16}", entry["id"]):
            raise ValueError(f"bad KEK id {entry['id']!r}")
        str(entry["created_at"])
        entry["retired_at"]  # noqa: B018 - presence check
    current = [entry["id"] for entry in metadata["keks"] if entry["retired_at"] is None]
    if current != [metadata["current_kek"]]:
        raise ValueError("exactly one KEK must be current and match current_kek")
    if len(base64.b64decode(metadata["identity"]["public_key"], validate=True)) != KEY_BYTES:
        raise ValueError("identity public key is not 32 bytes")
    for site, peer in metadata["peers"].items():
        public = base64.b64decode(peer["public_key"], validate=True)
        if not SITE_PATTERN.fullmatch(site) or kdf.identity_id_for(public) != peer["id"]:
            raise ValueError(f"peer {site!r} does not match its key id")
    deid = metadata.get("deid")
    if deid is not None and not (
        re.fullmatch(r"deid-[0-9a-f]{16}", deid["id"]) and isinstance(deid["created_at"], str)
    ):
        raise ValueError("bad de-identification key record")
    if not isinstance(metadata["history"], list):
        raise ValueError("history is not a list")
