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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from fedcodec.server.audit.log import AuditLog
from fedcodec.server.storage.backend import ObjectBackend
from fedcodec.server.storage.errors import ObjectMissing
from fedcodec.server.storage.header_check import HeaderReader, read_object_summary
from fedcodec.server.storage.index import ObjectIndex
from fedcodec.server.storage.replica_sync import adoptable_record, is_shared, record_adoption


@dataclass
class RecoveryReport:
    """What startup recovery found and did."""

    removed_temporaries: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    size_mismatches: list[str] = field(default_factory=list)
    audit_repairs: list[str] = field(default_factory=list)
    replacements: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.removed_temporaries or self.quarantined or self.missing_files
            or self.size_mismatches or self.audit_repairs or self.replacements
        )

    def lines(self) -> list[str]:
        out = [f"removed unfinished upload {p}" for p in self.removed_temporaries]
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
    for key in sorted(files.keys() - rows.keys()):
        record = adoptable_record(backend, header_reader, *key) if is_shared(backend) else None
        if record is not None:  # a complete object another replica (or we, before a crash) put
            index.insert(record)
            record_adoption(audit, record, "recovery indexed a checked object of the bucket")
            report.adopted.append(f"{key[0]}/{key[1]}")
            continue
        where = backend.quarantine(*key)
        report.quarantined.append(f"{key[0]}/{key[1]} -> {where}")
        audit.append(
            site="", action="recover", outcome="repaired", owner=key[0], object_id=key[1],
            detail=f"file without index row moved to {where}",
        )
    for key in sorted(rows.keys() - files.keys()):
        record = rows[key]
        index.delete(*key)
        report.missing_files.append(f"{key[0]}/{key[1]}")
        audit.append(
            site="", action="recover", outcome="data_loss", owner=key[0], object_id=key[1],
            key_id=",".join(record.key_ids), detail="index row without stored bytes removed",
        )
    for key in sorted(rows.keys() & files.keys()):
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


def reanchor(audit: AuditLog, index: ObjectIndex, report: RecoveryReport) -> None:
    """Anchor the log's last entry if a crash fell between its append and its anchor."""
    anchor = index.audit_head()
    seq, entry_hash = audit.head
    crash_window = (anchor is None and seq == 1) or (anchor is not None and anchor[0] == seq - 1)
    if seq and crash_window:
        index.set_audit_head(seq, entry_hash)
        report.audit_repairs.append(f"audit log: anchored head seq {seq} written before a crash")
