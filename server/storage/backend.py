"""Where ciphertext bytes live: the backend interface and the filesystem backend.

A backend knows nothing about sites' rights, hashes or headers (that is
:class:`~.service.StorageService`); it only makes a write either fully visible or absent.
The filesystem backend commits as: write a temporary file in the object's own folder, fsync it,
give it its final name, fsync the folder. A new object takes its name with ``link`` + ``unlink``
rather than ``rename`` because ``link`` refuses to replace an existing object (ids are written
once), which plain ``rename`` would silently do; an explicit replacement uses ``rename``. Both are
atomic on POSIX: a reader sees the old bytes or the new ones, never a mix.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from fedcodec.server.storage.errors import ObjectExists, ObjectMissing

TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class StoredObject:
    """An object the backend holds, as seen by a scan (recovery, audit)."""

    site: str
    object_id: str
    size: int


class PendingObject(Protocol):
    """An object being written: invisible until :meth:`commit`, gone after :meth:`abort`."""

    def write(self, data: bytes) -> None: ...

    def commit(self, replace: bool = False) -> None:
        """Make the bytes durable and visible under the object's id.

        ``replace=False`` raises :class:`ObjectExists` if the id is taken; ``replace=True``
        atomically swaps the new bytes in for the existing ones.
        """

    def abort(self) -> None: ...


class ObjectBackend(Protocol):
    """The storage interface every backend (filesystem, S3-compatible) implements."""

    def begin(self, site: str, object_id: str) -> PendingObject: ...

    def open(self, site: str, object_id: str) -> BinaryIO:
        """A binary reader; raise :class:`ObjectMissing` when absent."""

    def delete(self, site: str, object_id: str) -> None:
        """Remove the object durably; no error when already absent."""

    def scan(self) -> Iterator[StoredObject]:
        """Every committed object (never temporaries)."""

    def temporaries(self) -> list[str]:
        """Leftovers of writes that are in flight or were interrupted (read-only)."""

    def remove_temporaries(self) -> list[str]:
        """Delete leftovers of interrupted writes; return what was removed."""

    def quarantine(self, site: str, object_id: str) -> str:
        """Move an object out of service (kept for inspection); return where it went."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PendingFile:
    def __init__(self, folder: Path, final: Path) -> None:
        self._folder = folder
        self._final = final
        self._temp = folder / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        self._handle: BinaryIO | None = open(self._temp, "xb")  # noqa: SIM115 - closed in commit

    def write(self, data: bytes) -> None:
        assert self._handle is not None, "write after commit/abort"
        self._handle.write(data)

    def commit(self, replace: bool = False) -> None:
        assert self._handle is not None, "commit twice"
        handle, self._handle = self._handle, None
        try:
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            handle.close()
        if replace:
            os.replace(self._temp, self._final)
            _fsync_dir(self._folder)
            return
        try:
            os.link(self._temp, self._final)
        except FileExistsError:
            self._temp.unlink(missing_ok=True)
            raise ObjectExists(f"object {self._final.name!r} already exists") from None
        except BaseException:
            self._temp.unlink(missing_ok=True)
            raise
        self._temp.unlink()
        _fsync_dir(self._folder)

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._temp.unlink(missing_ok=True)


class FilesystemBackend:
    """Objects as files ``ROOT/objects/<site>/<object_id>``; ids are validated by the caller."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.quarantine_dir = self.root / "quarantine"
        self.objects.mkdir(parents=True, exist_ok=True)

    def _folder(self, site: str, create: bool = False) -> Path:
        folder = self.objects / site
        if create and not folder.is_dir():
            folder.mkdir(exist_ok=True)
            _fsync_dir(self.objects)
        return folder

    def begin(self, site: str, object_id: str) -> _PendingFile:
        folder = self._folder(site, create=True)
        return _PendingFile(folder, folder / object_id)

    def open(self, site: str, object_id: str) -> BinaryIO:
        try:
            return open(self._folder(site) / object_id, "rb")  # noqa: SIM115 - caller closes
        except FileNotFoundError:
            raise ObjectMissing(f"object {object_id!r} has no stored bytes") from None

    def delete(self, site: str, object_id: str) -> None:
        folder = self._folder(site)
        try:
            (folder / object_id).unlink()
        except FileNotFoundError:
            return
        _fsync_dir(folder)

    def scan(self) -> Iterator[StoredObject]:
        for folder in sorted(p for p in self.objects.iterdir() if p.is_dir()):
            for path in sorted(folder.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    yield StoredObject(folder.name, path.name, path.stat().st_size)

    def temporaries(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.objects.glob(f"*/{TEMP_PREFIX}*"))

    def remove_temporaries(self) -> list[str]:
        removed = []
        for path in sorted(self.objects.glob(f"*/{TEMP_PREFIX}*")):
            path.unlink(missing_ok=True)
            removed.append(str(path.relative_to(self.root)))
        for folder in {p.parent for p in map(self.root.joinpath, removed)}:
            _fsync_dir(folder)
        return removed

    def quarantine(self, site: str, object_id: str) -> str:
        target_dir = self.quarantine_dir / site
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{object_id}.{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.rename(self._folder(site) / object_id, target)
        _fsync_dir(target_dir)
        _fsync_dir(self._folder(site))
        return str(target.relative_to(self.root))
