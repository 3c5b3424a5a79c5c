"""The storage service's Ed25519 signing key: receipts for sites, signatures on the audit head.

Why a key of its own (not the TLS key): it signs statements that outlive a connection (a
receipt is checked months later by ``fedcodec store verify``, the head by every ``audit``), and
it must stay off the storage disk whose tampering it is meant to expose: by default it lives in
the service's TLS folder (``receipt-signing.key``, mode 0600) next to ``server.key``. Its public
half is written beside it (``receipt-signing.pub``) and into the storage root
(``audit/service-key.pub``) for ``fedcodec-server audit``; sites pin it on their first receipt.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.crypto.storage_receipt import (
    RECEIPT_CONTEXT,
    Receipt,
    SignedReceipt,
    head_message,
    signing_key_id,
)
from fedcodec.shared.errors import FedcodecError, UnknownNameError

SIGNING_KEY = "receipt-signing.key"
SIGNING_PUB = "receipt-signing.pub"
ROOT_PUB = Path("audit") / "service-key.pub"


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(path: Path) -> bytes:
    """Raw Ed25519 public key from a ``.pub`` (PEM) or the private key file itself."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UnknownNameError(f"service key not found: {path}") from None
    except OSError as exc:
        raise FedcodecError(f"cannot read service key {path}: {exc.strerror}") from None
    try:
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None)
            public = key.public_key()
        else:
            public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise FedcodecError(f"{path} is not a PEM Ed25519 key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise FedcodecError(f"{path} is not an Ed25519 key")
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class ServiceSigner:
    """Signs receipts and audit heads with the key at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.exists():
            if self.path.stat().st_mode & 0o077:
                raise FedcodecError(
                    f"signing key {self.path} is readable by group or others (chmod 600 it)"
                )
            try:
                key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
            except (ValueError, TypeError):
                raise FedcodecError(
                    f"signing key {self.path} is not a PEM private key (unencrypted PKCS#8)"
                ) from None
            if not isinstance(key, Ed25519PrivateKey):
                raise FedcodecError(f"signing key {self.path} is not an Ed25519 key")
        else:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            try:
                write_atomic(self.path, pem, mode=0o600)
                write_atomic(self.path.with_suffix(".pub"), _public_pem(key.public_key()),
                             mode=0o644)
            except OSError as exc:
                raise FedcodecError(
                    f"cannot create the signing key {self.path}: {exc.strerror} "
                    "(pass --signing-key PATH on a writable, private disk)"
                ) from None
        self._key = key
        self.public_raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = signing_key_id(self.public_raw)

    def publish(self, root: Path) -> None:
        """Write the public key into the storage root (what ``audit`` checks by default)."""
        write_atomic(Path(root) / ROOT_PUB, _public_pem(self._key.public_key()), mode=0o644)

    def sign_head(self, seq: int, entry_hash: str) -> str:
        return self._key.sign(head_message(seq, entry_hash)).hex()

    def receipt(
        self, action: str, site: str, object_id: str, size: int, sha256: str,
        content_digest: str, log_seq: int, chain_head: str,
    ) -> SignedReceipt:
        receipt = Receipt(
            action, site, object_id, size, sha256, content_digest, log_seq, chain_head,
            int(time.time() * 1000), self.key_id,
        )
        signature = self._key.sign(RECEIPT_CONTEXT + receipt.payload())
        return SignedReceipt(receipt, signature, self.public_raw)


def default_signing_key(tls_dir: Path | None, root: Path) -> Path:
    """``TLS_DIR/receipt-signing.key`` when it exists or can be made there, else in the root."""
    if tls_dir is not None:
        candidate = Path(tls_dir) / SIGNING_KEY
        if candidate.exists() or os.access(tls_dir, os.W_OK):
            return candidate
    return Path(root) / ".signing" / SIGNING_KEY
