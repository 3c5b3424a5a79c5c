"""Several service replicas on one bucket: index what another replica stored, forget what it
deleted.

Why: each replica keeps its own index and audit log on local disk, while the objects live in one
shared S3 bucket (a backend with ``shared_by_replicas = True``). The bucket is the truth about
which objects exist; an index is a per-replica cache of their records. A record can be rebuilt
from the bucket alone: size and modification time from ``HeadObject``, the ciphertext SHA-256
from the metadata the writing replica attached (it verified the bytes against the client's
declared hash before committing), the key ids, algorithm and content digest from the object's
public header, which must name the site and id of its key.

When: on ``List`` of a site's own namespace (:func:`sync_site`), on ``Get`` of an id the index
does not know (:func:`adoptable_record`), and at startup recovery, where an object without an
index row is adopted instead of quarantined if it checks out. Shares are per replica (they live
in the index) and are not synchronised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedcodec.server.audit.ledger import put_detail
from fedcodec.server.audit.log import AuditLog
from fedcodec.server.storage.backend import ObjectBackend
from fedcodec.server.storage.errors import InvalidObject, ObjectMissing
from fedcodec.server.storage.header_check import HEADER_PREFIX_BYTES, HeaderReader
from fedcodec.server.storage.index import ObjectIndex, ObjectRecord


def is_shared(backend: ObjectBackend) -> bool:
    """Whether other replicas may write to ``backend`` (only then is syncing needed)."""
    return bool(getattr(backend, "shared_by_replicas", False))


def adoptable_record(
    backend: ObjectBackend, header_reader: HeaderReader, site: str, object_id: str
) -> ObjectRecord | None:
    """The index record of a stored object another replica committed, or ``None`` when it is
    absent or does not check out (no SHA-256 metadata, bad header, header for another id)."""
    description = backend.describe(site, object_id)  # type: ignore[attr-defined]
    if description is None or len(description.sha256) != 64:
        return None
    try:
        with backend.open(site, object_id) as body:
            prefix = body.read(HEADER_PREFIX_BYTES)
        summary = header_reader(prefix)
    except (ObjectMissing, InvalidObject):
        return None
    if summary.site != site or summary.object_id != object_id:
        return None
    return ObjectRecord(
        site, object_id, description.size, description.sha256, summary.key_ids,
        summary.algorithm, summary.format_version, description.modified_ms,
        summary.content_digest,
    )


def record_adoption(audit: AuditLog, record: ObjectRecord, detail: str) -> None:
    audit.append(
        site="", action="adopt", outcome="ok", owner=record.site, object_id=record.object_id,
        key_id=",".join(record.key_ids),
        detail=f"{put_detail(record.sha256, record.size)} {detail}",
    )


@dataclass
class SyncResult:
    adopted: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)


def sync_site(
    backend: ObjectBackend, index: ObjectIndex, audit: AuditLog, header_reader: HeaderReader,
    site: str,
) -> SyncResult:
    """Bring ``site``'s index rows in line with the bucket (call under the commit lock)."""
    result = SyncResult()
    stored = {o.object_id for o in backend.scan(site)}  # type: ignore[call-arg]
    indexed = {r.object_id: r for r in index.records() if r.site == site}
    for object_id in sorted(stored - indexed.keys()):
        record = adoptable_record(backend, header_reader, site, object_id)
        if record is None or index.get(site, object_id) is not None:
            continue  # not (yet) a checked object; audit and recovery report it
        index.insert(record)
        record_adoption(audit, record, "indexed an object stored through another replica")
        result.adopted.append(object_id)
    for object_id in sorted(indexed.keys() - stored):
        if backend.describe(site, object_id) is not None:  # type: ignore[attr-defined]
            continue  # committed after the listing was taken
        record = index.delete(site, object_id)
        if record is None:
            continue
        audit.append(
            site="", action="forget", outcome="ok", owner=site, object_id=object_id,
            key_id=",".join(record.key_ids),
            detail="object no longer in the shared bucket (deleted through another replica)",
        )
        result.forgotten.append(object_id)
    return result
