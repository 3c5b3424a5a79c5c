"""Opening a storage root: one process at a time, recovery first, then the service.

A root folder holds ``objects/`` (ciphertext), ``quarantine/``, ``index.sqlite3`` and
``audit/audit.jsonl``. An exclusive ``flock`` on ``.lock`` keeps a second server (or an audit
that repairs) from running on the same root at once; the kernel drops it if the process dies,
so a SIGKILLed server can be restarted at once.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from fedcodec.server.audit.log import AuditLog, repair_torn_tail
from fedcodec.server.storage.backend import FilesystemBackend, ObjectBackend
from fedcodec.server.storage.header_check import HeaderReader, read_object_summary
from fedcodec.server.storage.index import ObjectIndex
from fedcodec.server.storage.limits import StorageLimits
from fedcodec.server.storage.recovery import RecoveryReport, reanchor, reconcile
from fedcodec.server.storage.service import StorageService
from fedcodec.shared.errors import FedcodecError


def storage_paths(root: Path) -> dict[str, Path]:
    """Where a storage root keeps its parts."""
    root = Path(root)
    return {
        "objects": root / "objects",
        "index": root / "index.sqlite3",
        "audit": root / "audit" / "audit.jsonl",
        "lock": root / ".lock",
    }


def lock_root(root: Path) -> IO[str]:
    """Hold the root's exclusive lock until the returned file is closed."""
    path = storage_paths(root)["lock"]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the service's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FedcodecError(f"storage root {root} is in use by another process") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def open_storage(
    root: Path,
    *,
    limits: StorageLimits = StorageLimits(),
    header_reader: HeaderReader = read_object_summary,
    backend: ObjectBackend | None = None,
) -> tuple[StorageService, RecoveryReport]:
    """Lock ``root``, run startup recovery, and return the ready service and what was repaired."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lock = lock_root(root)
    try:
        paths = storage_paths(root)
        report = RecoveryReport()
        torn = repair_torn_tail(paths["audit"])
        if torn:
            report.audit_repairs.append(torn)
        index = ObjectIndex(paths["index"])
        audit = AuditLog(paths["audit"], anchor=index.set_audit_head)
        reanchor(audit, index, report)
        backend = backend if backend is not None else FilesystemBackend(root)
        found = reconcile(backend, index, audit, header_reader)
        found.audit_repairs = report.audit_repairs + found.audit_repairs
        service = StorageService(backend, index, audit, header_reader, limits)
    except BaseException:
        lock.close()
        raise
    service.held.append(lock)
    return service, found
