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
from fedcodec.shared.crypto.errors import KeyringError

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


def _check_stat(path: Path, info: os.stat_result, what: str, *, secret: bool) -> os.stat_result:
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise KeyringError(f"refusing to use {what} {path}: owned by uid {info.st_uid}, not you")
    if info.st_mode & _OTHERS:
        wanted = PRIVATE_DIR_MODE if stat.S_ISDIR(info.st_mode) else PRIVATE_FILE_MODE
        raise KeyringError(
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
