"""The site's receipts from the storage service, kept in its state folder.

Each acknowledged put, replacement and delete comes with a receipt signed by the service
(:mod:`fedcodec.shared.crypto.storage_receipt`). The site keeps the latest receipt per object id
(``STATE/receipts/<site>/<object_id>.json``) and pins the service's signing key on the first
receipt (``STATE/receipts/<site>/service-key.json``): a later receipt or head under another key
is refused, so a service (or someone who took over its disk) cannot issue itself a new history. ``fedcodec
store verify`` checks the service against these files; ``store get`` checks each download
against its object's receipt.

Default state folder: ``$FEDCODEC_HOME/<site>`` (``~/.fedcodec/<site>``, where ``fedcodec join``
keeps a site's state too); ``--state-dir`` or ``FEDCODEC_STATE_DIR`` choose another.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from fedcodec.shared.atomic_files import PRIVATE_MODE, write_atomic
from fedcodec.shared.crypto.keyring_location import keys_root
from fedcodec.shared.crypto.storage_receipt import (
    Receipt,
    ReceiptError,
    SignedReceipt,
    signing_key_id,
)

PINNED_KEY = "service-key.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

__all__ = ["Receipt", "ReceiptStore", "default_state_dir"]


def default_state_dir(site: str) -> Path:
    """``$FEDCODEC_STATE_DIR`` if set, else ``$FEDCODEC_HOME/<site>``."""
    explicit = os.environ.get("FEDCODEC_STATE_DIR")
    return Path(explicit).expanduser() if explicit else keys_root().parent / site


class ReceiptStore:
    """Receipts of one site under ``state_dir/receipts``."""

    def __init__(self, state_dir: Path, site: str) -> None:
        self.folder = Path(state_dir) / "receipts" / site  # one folder may serve several sites
        self.site = site

    def _path(self, object_id: str) -> Path:
        if not _SAFE_ID.match(object_id) or object_id == PINNED_KEY.removesuffix(".json"):
            raise ReceiptError(f"refusing to keep a receipt for object id {object_id!r}")
        return self.folder / f"{object_id}.json"

    def pinned_key(self) -> bytes | None:
        path = self.folder / PINNED_KEY
        if not path.exists():
            return None
        try:
            return bytes.fromhex(json.loads(path.read_text())["public_key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ReceiptError(f"unreadable pinned service key {path} ({exc})") from None

    def check_key(self, public_key: bytes, what: str) -> None:
        """Pin ``public_key`` on first use; refuse any other key afterwards."""
        pinned = self.pinned_key()
        if pinned is None:
            write_atomic(
                self.folder / PINNED_KEY,
                json.dumps({"key_id": signing_key_id(public_key),
                            "public_key": public_key.hex()}).encode(),
                mode=PRIVATE_MODE,
            )
        elif pinned != public_key:
            raise ReceiptError(
                f"{what} is signed by service key {signing_key_id(public_key)}, not the pinned "
                f"{signing_key_id(pinned)} ({self.folder / PINNED_KEY}); a new service key must "
                "be confirmed by removing that file"
            )

    def record(self, signed: SignedReceipt) -> Receipt:
        """Verify ``signed`` (signature, this site, pinned key) and keep it."""
        receipt = signed.verify()
        if receipt.site != self.site:
            raise ReceiptError(f"receipt is for site {receipt.site!r}, not {self.site!r}")
        self.check_key(signed.public_key, f"receipt for {receipt.object_id}")
        write_atomic(
            self._path(receipt.object_id),
            json.dumps(signed.to_json(), indent=1).encode(),
            mode=PRIVATE_MODE,
        )
        return receipt

    def all(self) -> list[SignedReceipt]:
        """Every kept receipt (signatures re-verified), by object id."""
        found = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.json")):
            if path.name == PINNED_KEY:
                continue
            try:
                signed = SignedReceipt.from_json(json.loads(path.read_text()))
            except ValueError as exc:
                raise ReceiptError(f"unreadable receipt {path} ({exc})") from None
            signed.verify()
            found.append(signed)
        return found

    def latest(self, object_id: str) -> Receipt | None:
        """The receipt of the object's current version (None: none kept, or it was deleted)."""
        path = self._path(object_id)
        if not path.exists():
            return None
        try:
            signed = SignedReceipt.from_json(json.loads(path.read_text()))
        except ValueError as exc:
            raise ReceiptError(f"unreadable receipt {path} ({exc})") from None
        receipt = signed.verify()
        return None if receipt.action == "delete" else receipt
