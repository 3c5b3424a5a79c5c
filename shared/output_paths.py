"""Check where an output will go before any work: a bad ``-o`` fails in a second, not after an
hour of compression, and ``--force`` never replaces anything but an earlier output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from fedcodec.shared.errors import FedcodecError


def check_output(path: Path, *, folder: bool, force: bool = False) -> None:
    """Raise a one-line :class:`FedcodecError` unless ``path`` can be written as a file
    (``folder`` False) or created as a folder: an existing file is replaced only with ``force``
    and only if it is a regular file (not a device, a folder or a symlink); the nearest existing
    folder above it must take a new entry (tried with a hidden probe file when it is the parent,
    which also catches read-only and pseudo file systems such as /proc and /sys)."""
    path = Path(path)
    if path.is_symlink() or path.exists():
        if folder:
            if not path.is_dir() or path.is_symlink():
                raise FedcodecError(f"output {path} exists and is not a folder")
        elif not force:
            raise FedcodecError(f"{path} exists; use --force to overwrite it")
        elif path.is_symlink() or not path.is_file():
            what = "a folder" if path.is_dir() and not path.is_symlink() else "not a regular file"
            raise FedcodecError(f"refusing to replace {path}: it is {what} "
                                "(--force replaces only an earlier output)")
    above = path.parent
    while not above.exists():
        if above.is_symlink():
            raise FedcodecError(f"cannot write {path}: {above} is a broken link")
        above = above.parent
    if not above.is_dir():
        raise FedcodecError(f"cannot write {path}: {above} is not a folder")
    if above != path.parent:
        if not os.access(above, os.W_OK | os.X_OK):
            raise FedcodecError(f"cannot write {path}: no permission to create a folder in "
                                f"{above}")
        return
    try:
        handle, probe = tempfile.mkstemp(prefix=".fedcodec-probe-", dir=above)
    except OSError as exc:
        raise FedcodecError(f"cannot write {path}: {exc.strerror or exc} in {above}") from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(probe)
