"""Owner-only files and directories for key material: atomic writes, checked reads.

Like ssh, a keyring refuses to use key files other users could read or replace: a KEK that was
world-readable for a while must be treated as leaked, and the user should find out now rather
than after the fact. Writes go to a temporary file in the same directory, are fsynced, then
renamed over the target, so a crash never leaves a half-written key or metadata file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.crypto.errors import KeyringError, PrivateKeyFileError
from fedcodec.shared.errors import FedcodecError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with the directory itself owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        pass
    os.chmod(path, PRIVATE_DIR_MODE)
    check_private(path, what="keyring directory")


def check_private(path: Path, *, what: str) -> os.stat_result:
    """Refuse ``path`` unless it is a real file/dir owned by us with no group/other access."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise KeyringError(f"{what} {path} does not exist") from None
    if stat.S_ISLNK(info.st_mode):
        raise KeyringError(f"refusing to use {what} {path}: it is a symbolic link")
    return _check_stat(path, info, what, secret=False)


def _check_stat(
    path: Path,
    info: os.stat_result,
    what: str,
    *,
    secret: bool,
    root_may_own: bool = False,
    error: type[FedcodecError] = KeyringError,
) -> os.stat_result:
    owners = {os.getuid(), 0} if root_may_own else {os.getuid()}
    if hasattr(os, "getuid") and info.st_uid not in owners:
        raise error(f"refusing to use {what} {path}: owned by uid {info.st_uid}, not you")
    if info.st_mode & _OTHERS:
        wanted = PRIVATE_DIR_MODE if stat.S_ISDIR(info.st_mode) else PRIVATE_FILE_MODE
        raise error(
            f"refusing to use {what} {path}: mode {stat.S_IMODE(info.st_mode):04o} lets group or "
            f"others access it; {'treat the key as exposed, then ' if secret else ''}"
            f"run: chmod {wanted:o} {path}"
        )
    return info


def read_private_file(
    path: Path, *, what: str, secret: bool = True, max_bytes: int = 1 << 20
) -> bytes:
    """Contents of an owner-only regular file (no symlinks), checked on the open descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise KeyringError(f"{what} {path} is missing") from None
    except OSError as exc:
        raise KeyringError(f"cannot open {what} {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyringError(f"refusing to use {what} {path}: not a regular file")
        _check_stat(path, info, what, secret=secret)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise KeyringError(f"{what} {path} is larger than {max_bytes} bytes")
    return data


def read_private_key_file(path: Path, *, what: str, max_bytes: int = 1 << 20) -> bytes:
    """A private key file that is not a keyring's (TLS, CA, SuperNode, service signing keys).

    The same rule as the keyring, as ssh applies it to identity files: refused when group or
    others may read it, or when neither you nor root owns it. Unlike keyring files, a symbolic
    link is followed (Kubernetes and compose mount secrets through links) and the file it
    reaches is what is checked, on the open descriptor.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; fstat needs the descriptor
    except FileNotFoundError:
        raise PrivateKeyFileError(f"{what} {path} is missing") from None
    except OSError as exc:
        raise PrivateKeyFileError(f"cannot open {what} {path}: {exc.strerror}") from None
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise PrivateKeyFileError(f"refusing to use {what} {path}: not a regular file")
        _check_stat(path, info, what, secret=True, root_may_own=True, error=PrivateKeyFileError)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PrivateKeyFileError(f"{what} {path} is larger than {max_bytes} bytes")
    return data


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600), durable once this returns."""
    write_atomic(path, data, mode=PRIVATE_FILE_MODE)


@contextlib.contextmanager
def exclusive_lock(directory: Path) -> Iterator[None]:
    """Serialise keyring changes between processes (``flock`` on ``directory/.lock``)."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
