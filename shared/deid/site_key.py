"""The site secret that keys UID replacement: create it once, read it for every run.

The same key must be used for every run at a site (that is what makes a study map to the same new
UIDs every time), and it must never leave the site (with it, anyone can test a guessed UID). The
file holds 32 random bytes as 64 hex characters, mode 0600.

TODO(keyring): DESIGN.md wants one keyring per site; move these two functions there when it exists.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fedcodec.shared.errors import FedcodecError

KEY_BYTES = 32


def create_deid_key(path: Path) -> bytes:
    """Write a new random key to ``path`` (refusing to overwrite one) and return it."""
    path = Path(path)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FedcodecError(f"key file already exists, not overwriting it: {path}") from None
    except OSError as exc:
        raise FedcodecError(f"cannot create key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    return key


def read_deid_key(path: Path) -> bytes:
    """The key in ``path``: 64+ hex characters (or at least 32 raw bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FedcodecError(
            f"key file not found: {path} (create one with `fedcodec deid --create-key ...`)"
        ) from None
    except OSError as exc:
        raise FedcodecError(f"cannot read key file {path}: {exc.strerror}") from None
    text = raw.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) < KEY_BYTES:
        raise FedcodecError(
            f"key file {path} holds {len(key)} bytes; a de-identification key needs {KEY_BYTES}"
        )
    return key
