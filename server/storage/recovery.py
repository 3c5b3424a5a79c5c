"""Startup repair: bring files, index and audit log back to one consistent picture.

A crash can leave (a) temporary files of uploads that were never acknowledged, (b) a committed
file whose index row was never written (crash between the two; also never acknowledged), (c) an
index row whose file is gone (should not happen: files are fsynced before rows are written; if it
does, bytes were lost outside the service), (d) a torn last audit line, (e) an audit entry
written just before its anchor, or (f) a journalled replacement whose file swap may or may not
have happened. Recovery removes (a), moves (b) to ``quarantine/`` (kept, never listed), removes
the row of (c) and says so loudly, cuts (d), re-anchors (e), and settles (f) by hashing the file:
the index ends up describing whichever version is on disk. Every repair is reported and written
to the audit log.

The audit log is the reference for what was acknowledged (:mod:`fedcodec.server.audit.ledger`),
so recovery also survives an index that is *older* than the log (rolled back, restored from a
backup): the gap is reported as an INDEX ROLLBACK; a file without row whose put the log
acknowledged is re-indexed when its bytes are exactly the acknowledged ones and otherwise
quarantined as DATA LOSS (``audit`` keeps failing on it); a row of an object the log says was
deleted is dropped as stale; a row whose put a crash kept out of the log is logged as adopted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from fedcodec.server.audit.ledger import ADOPTED, RESTORED, put_detail, replay
from fedcodec.server.audit.log import AuditLog
from fedcodec.server.storage.backend import ObjectBackend
from fedcodec.server.storage.errors import ObjectMissing
from fedcodec.server.storage.header_check import (
    HEADER_PREFIX_BYTES,
    HeaderReader,
    read_object_summary,
)
from fedcodec.server.storage.index import ObjectIndex, ObjectRecord, now_ms
from fedcodec.server.storage.replica_sync import adoptable_record, is_shared, record_adoption
from fedcodec.shared.errors import FedcodecError


@dataclass
class RecoveryReport:
    """What startup recovery found and did."""

    removed_temporaries: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    size_mismatches: list[str] = field(default_factory=list)
    audit_repairs: list[str] = field(default_factory=list)
    replacements: list[str] = field(default_factory=list)
    rollbacks: list[str] = field(default_factory=list)
    quarantined_acknowledged: list[str] = field(default_factory=list)
    stale_rows: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.removed_temporaries or self.quarantined or self.missing_files
            or self.size_mismatches or self.audit_repairs or self.replacements or self.rollbacks
            or self.quarantined_acknowledged or self.stale_rows or self.adopted or self.restored
        )

    def lines(self) -> list[str]:
        out = list(self.rollbacks)
        out += [f"DATA LOSS: acknowledged object had no index row, quarantined: {p}"
                for p in self.quarantined_acknowledged]
        out += [f"removed the stale index row of a deleted object: {p}" for p in self.stale_rows]
        out += [f"RESTORED the index row of an acknowledged object the index had lost: {p}"
                for p in self.restored]
        out += [f"logged an indexed object whose put entry a crash cut off: {p}"
                for p in self.adopted]
        out += [f"removed unfinished upload {p}" for p in self.removed_temporaries]
        out += [f"quarantined unacknowledged object without index row: {p}"
                for p in self.quarantined]
        out += [f"DATA LOSS: index row without stored bytes removed: {p}"
                for p in self.missing_files]
        out += [f"size differs from index (left in place; run audit): {p}"
                for p in self.size_mismatches]
        out += self.replacements
        out += [f"indexed a checked object of the shared bucket: {p}" for p in self.adopted]
        out += self.audit_repairs
        return out


def reconcile(
    backend: ObjectBackend,
    index: ObjectIndex,
    audit: AuditLog,
    header_reader: HeaderReader = read_object_summary,
) -> RecoveryReport:
    """Repair (a), (b), (c) above, recording each repair in ``audit``.

    On a backend shared by replicas (:mod:`.replica_sync`), an object of (b) whose metadata
    and header check out is indexed ("adopted") rather than quarantined: it may be another
    replica's acknowledged object, and it is complete (S3 commits atomically).
    """
    report = RecoveryReport()
    report.removed_temporaries = backend.remove_temporaries()
    for pending in index.pending_replaces():
        name = f"{pending.site}/{pending.object_id}"
        if _sha256_of(backend, pending.site, pending.object_id) == pending.sha256:
            index.finish_replace(pending.site, pending.object_id)
            outcome = "completed"
        else:
            index.drop_replace(pending.site, pending.object_id)
            outcome = "rolled back"
        report.replacements.append(f"replacement of {name} interrupted by a crash: {outcome}")
        audit.append(
            site="", action="recover", outcome="repaired", owner=pending.site,
            object_id=pending.object_id, detail=f"interrupted replacement {outcome}",
        )
    rows = {(r.site, r.object_id): r for r in index.records()}
    files = {(o.site, o.object_id): o for o in backend.scan()}
    ledger = replay(audit.path)
    for key in sorted(files.keys() - rows.keys()):
        state = ledger.get(key)
        if state is not None and state.present and state.sha256:
            restored = _reindex(backend, index, header_reader, key, state.sha256)
            if restored is not None:  # the index lost the row of an intact acknowledged object
                report.restored.append(f"{key[0]}/{key[1]} (acknowledged at log seq {state.seq})")
                audit.append(
                    site="", action="recover", outcome=RESTORED, owner=key[0],
                    object_id=key[1], key_id=",".join(restored.key_ids),
                    detail=put_detail(restored.sha256, restored.size)
                    + f" acknowledged at seq {state.seq}, missing from the index: re-indexed",
                )
                continue
        record = adoptable_record(backend, header_reader, *key) if is_shared(backend) else None
        if record is not None:  # a complete object another replica (or we, before a crash) put
            index.insert(record)
            record_adoption(audit, record, "recovery indexed a checked object of the bucket")
            report.adopted.append(f"{key[0]}/{key[1]}")
            continue
        where = backend.quarantine(*key)
        if state is not None and state.present:  # acknowledged, but not the acknowledged bytes
            report.quarantined_acknowledged.append(
                f"{key[0]}/{key[1]} (acknowledged at log seq {state.seq}) -> {where}"
            )
            audit.append(
                site="", action="recover", outcome="data_loss", owner=key[0], object_id=key[1],
                detail=f"acknowledged object without index row moved to {where}",
            )
            continue
        report.quarantined.append(f"{key[0]}/{key[1]} -> {where}")
        audit.append(
            site="", action="recover", outcome="repaired", owner=key[0], object_id=key[1],
            detail=f"file without index row moved to {where}",
        )
    for key in sorted(rows.keys() - files.keys()):
        record = rows[key]
        index.delete(*key)
        state = ledger.get(key)
        if state is not None and not state.present:  # deleted later: the index is older
            report.stale_rows.append(f"{key[0]}/{key[1]} (deleted at log seq {state.seq})")
            audit.append(
                site="", action="recover", outcome="repaired", owner=key[0], object_id=key[1],
                detail=f"stale index row of an object deleted at seq {state.seq} removed",
            )
            continue
        report.missing_files.append(f"{key[0]}/{key[1]}")
        audit.append(
            site="", action="recover", outcome="data_loss", owner=key[0], object_id=key[1],
            key_id=",".join(record.key_ids), detail="index row without stored bytes removed",
        )
    for key in sorted(rows.keys() & files.keys()):
        state = ledger.get(key)
        if state is None or not state.present:  # committed and indexed, crash before its entry
            record = rows[key]
            report.adopted.append(f"{key[0]}/{key[1]}")
            audit.append(
                site="", action="recover", outcome=ADOPTED, owner=key[0], object_id=key[1],
                key_id=",".join(record.key_ids),
                detail=put_detail(record.sha256, record.size)
                + " indexed, but a crash came before its put was logged (never acknowledged)",
            )
        if rows[key].size != files[key].size:
            report.size_mismatches.append(
                f"{key[0]}/{key[1]} ({files[key].size} bytes, index {rows[key].size})"
            )
    if report.removed_temporaries:
        audit.append(
            site="", action="recover", outcome="repaired",
            detail=f"removed {len(report.removed_temporaries)} unfinished uploads",
        )
    return report


def _reindex(
    backend: ObjectBackend,
    index: ObjectIndex,
    header_reader: HeaderReader,
    key: tuple[str, str],
    logged_sha256: str,
) -> ObjectRecord | None:
    """Index the stored file again if it is exactly what the log acknowledged, else None."""
    digest, size, prefix = hashlib.sha256(), 0, b""
    with backend.open(*key) as handle:
        while chunk := handle.read(1 << 20):
            if len(prefix) < HEADER_PREFIX_BYTES:
                prefix += chunk[: HEADER_PREFIX_BYTES - len(prefix)]
            digest.update(chunk)
            size += len(chunk)
    if digest.hexdigest() != logged_sha256:
        return None
    try:
        summary = header_reader(prefix)
    except FedcodecError:
        return None
    if (summary.site, summary.object_id) != key:
        return None
    record = ObjectRecord(
        key[0], key[1], size, logged_sha256, summary.key_ids, summary.algorithm,
        summary.format_version, summary.created_unix_ms or now_ms(), summary.content_digest,
    )
    index.insert(record)
    return record


def _sha256_of(backend: ObjectBackend, site: str, object_id: str) -> str | None:
    try:
        handle = backend.open(site, object_id)
    except ObjectMissing:
        return None
    digest = hashlib.sha256()
    with handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def reanchor(
    audit: AuditLog,
    index: ObjectIndex,
    report: RecoveryReport,
    anchor: Callable[[int, str], None] | None = None,
) -> None:
    """Anchor the log's last entry if a crash fell between its append and its anchor.

    Any larger gap means the index is older than the log (rolled back, or restored from a
    backup): that is reported as a rollback, never repaired silently, and recorded in the log.
    """
    anchored = index.audit_head()
    seq, entry_hash = audit.head
    crash_window = (
        (anchored is None and seq == 1) or (anchored is not None and anchored[0] == seq - 1)
    )
    if seq and crash_window:
        (anchor or index.set_audit_head)(seq, entry_hash)
        report.audit_repairs.append(f"audit log: anchored head seq {seq} written before a crash")
    elif seq and (anchored is None or anchored[0] < seq - 1):
        behind = anchored[0] if anchored else 0
        message = (
            f"INDEX ROLLBACK: the index anchors audit seq {behind} but the log reaches seq {seq} "
            "(index restored from an older copy?); run `fedcodec-server audit`"
        )
        report.rollbacks.append(message)
        audit.append(site="", action="recover", outcome="rollback", detail=message)
