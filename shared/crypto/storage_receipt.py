"""Receipts and the signed audit head: what the storage service signs, and how anyone checks it.

The service signs with an Ed25519 key that never leaves it (``server/storage/signing.py``).
A **receipt** says "object ``site/object_id`` with ciphertext ``sha256`` was acknowledged (or
deleted) as audit-log entry ``log_seq`` whose chain hash is ``chain_head``"; the site keeps it
and later proves with it that the service still holds that exact version (``fedcodec store
verify``). The **audit head** signature covers ``(seq, entry_hash)`` of the log's last entry,
so a log whose hashes were recomputed after an edit fails ``fedcodec-server audit`` unless the
editor also holds the key. Both sides need the exact signed bytes, hence this module in
``shared/``: canonical JSON (sorted keys, no spaces) after a context line that keeps a receipt
signature from ever passing as a head signature and vice versa.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedcodec.shared.errors import CorruptDataError

RECEIPT_CONTEXT = b"fedcodec storage receipt v1\n"
HEAD_CONTEXT = b"fedcodec storage audit head v1\n"
RECEIPT_ACTIONS = ("put", "replace", "delete")


class ReceiptError(CorruptDataError):
    """A receipt or head signature that does not verify, or a receipt that is not well-formed."""


def signing_key_id(public_raw: bytes) -> str:
    """A short, stable name for an Ed25519 public key (raw 32 bytes)."""
    return "ed25519-" + hashlib.sha256(public_raw).hexdigest()[:16]


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _verify(public_raw: bytes, message: bytes, signature: bytes, what: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise ReceiptError(
            f"{what}: signature does not verify under service key {signing_key_id(public_raw)}"
        ) from None


@dataclass(frozen=True)
class Receipt:
    """The signed statement about one acknowledged put, replacement or deletion."""

    action: str
    site: str
    object_id: str
    size: int
    sha256: str  # hex of the ciphertext ("" for a deletion)
    content_digest: str  # hex of the header's bound digest (identifies the encrypted content)
    log_seq: int
    chain_head: str  # entry_hash of audit entry ``log_seq``
    time_ms: int
    key_id: str  # signing_key_id of the key that signs it

    def payload(self) -> bytes:
        return _canonical(asdict(self))

    @classmethod
    def from_payload(cls, payload: bytes) -> Receipt:
        try:
            body = json.loads(payload)
            receipt = cls(**body)
        except (ValueError, TypeError) as exc:
            raise ReceiptError(f"not a storage receipt ({exc})") from None
        if receipt.action not in RECEIPT_ACTIONS or receipt.payload() != payload:
            raise ReceiptError("not a canonical storage receipt")
        return receipt


@dataclass(frozen=True)
class SignedReceipt:
    """A receipt with the service's signature and public key (raw Ed25519, 32 bytes)."""

    receipt: Receipt
    signature: bytes
    public_key: bytes

    def verify(self) -> Receipt:
        """The receipt, if the signature verifies under ``public_key`` (pin that key!)."""
        if signing_key_id(self.public_key) != self.receipt.key_id:
            raise ReceiptError("receipt names another signing key than the one it carries")
        _verify(
            self.public_key, RECEIPT_CONTEXT + self.receipt.payload(), self.signature,
            f"receipt for {self.receipt.site}/{self.receipt.object_id}",
        )
        return self.receipt

    def to_json(self) -> dict:
        return {
            "receipt": asdict(self.receipt),
            "signature": self.signature.hex(),
            "public_key": self.public_key.hex(),
        }

    @classmethod
    def from_json(cls, data: dict) -> SignedReceipt:
        try:
            receipt = Receipt.from_payload(_canonical(data["receipt"]))
            return cls(receipt, bytes.fromhex(data["signature"]), bytes.fromhex(data["public_key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReceiptError(f"not a stored receipt ({exc})") from None


def head_message(seq: int, entry_hash: str) -> bytes:
    """The bytes a head signature covers."""
    return HEAD_CONTEXT + _canonical({"entry_hash": entry_hash, "seq": seq})


def verify_head(public_raw: bytes, seq: int, entry_hash: str, signature: bytes) -> None:
    """Raise :class:`ReceiptError` unless ``signature`` signs head ``(seq, entry_hash)``."""
    _verify(public_raw, head_message(seq, entry_hash), signature, f"audit head seq {seq}")
