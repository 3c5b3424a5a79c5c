"""`fedcodec-server audit`: is the log intact, is every object what the index says, what is stored.

Three checks, each reported with the exact thing that failed:

1. the audit log's hash chain and its anchor (:func:`~.log.verify_chain`);
2. every indexed object: its bytes exist, have the indexed size and SHA-256, and start with a
   well-formed encrypted-object header for the same site and id (read without keys); and no
   stored file is missing from the index;
3. an inventory: algorithms, key ids (with the age of the oldest object each protects, which is
   what a rotation policy acts on), objects and bytes per site.

The audit only reads: it takes no lock and can run beside a live service (an entry or object
being committed at that very instant may show as an incomplete last line or an unindexed file;
run again, or audit a stopped service for an exact answer).
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fedcodec.server.audit.ledger import Ledger, replay
from fedcodec.server.audit.log import ChainReport, verify_chain
from fedcodec.server.storage.backend import FilesystemBackend, ObjectBackend
from fedcodec.server.storage.errors import InvalidObject, ObjectMissing
from fedcodec.server.storage.header_check import (
    HEADER_PREFIX_BYTES,
    HeaderReader,
    StructureCheck,
    read_object_summary,
)
from fedcodec.server.storage.index import ObjectIndex, ObjectRecord
from fedcodec.server.storage.root import storage_paths
from fedcodec.server.storage.signing import ROOT_PUB, load_public_key
from fedcodec.shared.crypto.storage_receipt import ReceiptError, verify_head
from fedcodec.shared.errors import FedcodecError, UnknownNameError

DAY_MS = 86_400_000


@dataclass
class AuditReport:
    """Everything the audit found; ``ok`` only when no check failed."""

    root: str
    chain: ChainReport
    objects_checked: int = 0
    object_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    algorithms: dict[str, dict] = field(default_factory=dict)
    format_versions: dict[str, int] = field(default_factory=dict)
    key_ids: dict[str, dict] = field(default_factory=dict)
    sites: dict[str, dict] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return [f"audit log: {p}" for p in self.chain.problems] + self.object_problems

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "ok": self.ok,
            "audit_log": {
                "entries": self.chain.entries,
                "head_seq": self.chain.head[0],
                "head_hash": self.chain.head[1],
                "ok": self.chain.ok,
            },
            "objects_checked": self.objects_checked,
            "problems": self.problems,
            "warnings": self.warnings,
            "inventory": {
                "algorithms": self.algorithms,
                "format_versions": self.format_versions,
                "key_ids": self.key_ids,
                "sites": self.sites,
            },
        }


def _hash_stream(handle: BinaryIO) -> tuple[int, str, bytes, str]:
    """Size, SHA-256, header prefix and a structure problem ('' when well-formed)."""
    digest, size, prefix = hashlib.sha256(), 0, b""
    structure, problem = StructureCheck(), ""
    with handle:
        while chunk := handle.read(1 << 20):
            if len(prefix) < HEADER_PREFIX_BYTES:
                prefix += chunk[: HEADER_PREFIX_BYTES - len(prefix)]
            digest.update(chunk)
            size += len(chunk)
            if not problem:
                try:
                    structure.feed(chunk)
                except InvalidObject as exc:
                    problem = str(exc)
    if not problem:
        try:
            structure.finish()
        except InvalidObject as exc:
            problem = str(exc)
    return size, digest.hexdigest(), prefix, problem


def audit_storage(
    root: Path,
    *,
    header_reader: HeaderReader = read_object_summary,
    backend: ObjectBackend | None = None,
    now_ms: int | None = None,
    service_key: Path | None = None,
    reviewed_through: int = 0,
) -> AuditReport:
    """Run every check on the storage root ``root`` (read-only).

    ``backend`` holds the objects (default: the filesystem backend under ``root``);
    ``service_key`` is the service's public signing key (default: the copy in the root; pin the
    one from the service's TLS folder, since whoever can write the root can replace that copy);
    recovery alarms (index rollback, data loss) up to log seq ``reviewed_through`` were
    investigated by the operator and are no longer problems.
    """
    root = Path(root)
    paths = storage_paths(root)
    if not paths["index"].exists():
        raise UnknownNameError(f"no storage index at {paths['index']} (is {root} a storage root?)")
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    pinned = load_public_key(service_key) if service_key is not None else None
    index = ObjectIndex(paths["index"])
    try:
        signed = index.signed_audit_head()  # read before the log, so the log is this long
        anchor = signed[:2] if signed else None
        records = list(index.records())
        chain = verify_chain(paths["audit"], anchor, latest_anchor=index.audit_head)
    finally:
        index.close()
    if anchor is None and chain.entries:
        chain.problems.append("the index holds no anchor for a non-empty audit log")
    if signed is not None and signed[0] > 0:
        chain.problems += _head_signature_problems(root, signed, pinned)
    report = AuditReport(str(root), chain)
    backend = backend if backend is not None else FilesystemBackend(root)
    _check_objects(report, backend, records, header_reader, now_ms)
    _cross_check_log(report, replay(paths["audit"]), records, backend, reviewed_through)
    return report


def _head_signature_problems(
    root: Path, signed: tuple[int, str, str], pinned: bytes | None
) -> list[str]:
    """Is the anchored head signed by the service key? (A re-chained log is not.)"""
    seq, entry_hash, signature = signed
    if pinned is None:
        copy = root / ROOT_PUB
        if not copy.exists():
            return [f"no service public key to check the signed head ({copy} is missing; pass "
                    "--service-key)"]
        pinned = load_public_key(copy)
    if not signature:
        return [f"the anchored head seq {seq} is not signed (log or index rewritten outside the "
                "service, or written by a version that did not sign)"]
    try:
        verify_head(pinned, seq, entry_hash, bytes.fromhex(signature))
    except (ReceiptError, ValueError) as exc:
        return [f"{exc} (the log or its anchor was rewritten without the service's key)"]
    return []


def _cross_check_log(
    report: AuditReport,
    ledger: Ledger,
    records: list[ObjectRecord],
    backend: ObjectBackend,
    reviewed_through: int,
) -> None:
    """log <-> index <-> files: what the log acknowledged must be there, and nothing else."""
    for seq, outcome, detail in ledger.alarms:
        if seq > reviewed_through:
            report.object_problems.append(
                f"recovery at log seq {seq} ({outcome}): {detail} (investigate, then audit with "
                f"--reviewed-through {seq})"
            )
    rows = {(r.site, r.object_id): r for r in records}
    files = {(o.site, o.object_id) for o in backend.scan()}
    for key, record in sorted(rows.items()):
        granted = ledger.shares.get(key, set())
        if set(record.shared_with) != granted:
            report.object_problems.append(
                f"{key[0]}/{key[1]}: shared with {sorted(record.shared_with)} in the index, "
                f"{sorted(granted)} by the log (index rolled back or edited?)"
            )
    for key in sorted(ledger.states.keys() | rows.keys()):
        name = f"{key[0]}/{key[1]}"
        state, record = ledger.get(key), rows.get(key)
        if state is not None and state.present:
            if record is None:
                report.object_problems.append(
                    f"{name}: acknowledged {state.action} at log seq {state.seq} and never "
                    "deleted, but not in the index (rolled back, or removed outside the service)"
                    + ("" if key in files else "; its file is gone too")
                )
            elif state.sha256 and state.sha256 != record.sha256:
                report.object_problems.append(
                    f"{name}: the index holds another version than the last acknowledged one "
                    f"(log seq {state.seq}): rolled back, or swapped with another object?"
                )
        elif record is not None:
            why = (f"the log records its delete at seq {state.seq}" if state is not None
                   else "the log has no acknowledged put of it")
            report.object_problems.append(f"{name}: in the index but {why}")
    quarantine = getattr(backend, "quarantine_dir", None)
    if quarantine is not None and Path(quarantine).is_dir():
        held = sorted(str(p.relative_to(quarantine)) for p in Path(quarantine).rglob("*")
                      if p.is_file())
        if held:
            report.warnings.append(
                f"{len(held)} quarantined file(s) kept for inspection: {', '.join(held[:5])}"
            )


def _check_objects(
    report: AuditReport,
    backend: ObjectBackend,
    records: list[ObjectRecord],
    header_reader: HeaderReader,
    now_ms: int,
) -> None:
    indexed = set()
    algorithms: dict[str, dict] = defaultdict(lambda: {"objects": 0, "bytes": 0})
    keys: dict[str, dict] = {}
    sites: dict[str, dict] = defaultdict(lambda: {"objects": 0, "bytes": 0, "shared": 0})
    versions: dict[str, int] = defaultdict(int)
    for record in records:
        name = f"{record.site}/{record.object_id}"
        indexed.add((record.site, record.object_id))
        report.objects_checked += 1
        try:
            size, sha, prefix, malformed = _hash_stream(
                backend.open(record.site, record.object_id)
            )
        except ObjectMissing:
            report.object_problems.append(f"{name}: indexed but its bytes are missing")
            continue
        if size != record.size or sha != record.sha256:
            report.object_problems.append(
                f"{name}: stored bytes do not match the index (size {size} vs {record.size}, "
                f"sha256 {'equal' if sha == record.sha256 else 'differs'})"
            )
        if malformed:
            report.object_problems.append(f"{name}: {malformed}")
        try:
            summary = header_reader(prefix)
        except FedcodecError as exc:
            report.object_problems.append(f"{name}: {exc}")
            continue
        if summary.site != record.site or summary.object_id != record.object_id:
            report.object_problems.append(
                f"{name}: header names {summary.site}/{summary.object_id}"
            )
        if tuple(summary.key_ids) != tuple(record.key_ids):
            report.object_problems.append(
                f"{name}: header key ids {list(summary.key_ids)} differ from the index "
                f"{list(record.key_ids)}"
            )
        encrypted_ms = summary.created_unix_ms or record.created_ms
        algorithms[summary.algorithm]["objects"] += 1
        algorithms[summary.algorithm]["bytes"] += record.size
        versions[str(summary.format_version)] += 1
        for key_id in summary.key_ids:
            entry = keys.setdefault(
                key_id,
                {"objects": 0, "bytes": 0, "sites": [], "oldest_object_unix_ms": encrypted_ms},
            )
            entry["objects"] += 1
            entry["bytes"] += record.size
            if record.site not in entry["sites"]:
                entry["sites"].append(record.site)
            entry["oldest_object_unix_ms"] = min(entry["oldest_object_unix_ms"], encrypted_ms)
        sites[record.site]["objects"] += 1
        sites[record.site]["bytes"] += record.size
        sites[record.site]["shared"] += bool(record.shared_with)
    for stored in backend.scan():
        if (stored.site, stored.object_id) not in indexed:
            report.object_problems.append(
                f"{stored.site}/{stored.object_id}: stored but not in the index"
            )
    temporaries = backend.temporaries()
    if temporaries:
        report.warnings.append(
            f"{len(temporaries)} unfinished upload file(s) (removed at the next service start)"
        )
    for entry in keys.values():
        entry["age_days"] = round((now_ms - entry["oldest_object_unix_ms"]) / DAY_MS, 2)
        entry["sites"].sort()
    report.algorithms = dict(sorted(algorithms.items()))
    report.format_versions = dict(sorted(versions.items()))
    report.key_ids = dict(sorted(keys.items()))
    report.sites = dict(sorted(sites.items()))


def render_text(report: AuditReport) -> str:
    """The report as plain text for a terminal."""
    lines = [f"storage root: {report.root}"]
    head_seq, head_hash = report.chain.head
    lines.append(
        f"audit log: {report.chain.entries} entries, head seq {head_seq} {head_hash[:16]}... "
        + ("chain OK" if report.chain.ok else "CHAIN BROKEN")
    )
    lines.append(f"objects checked: {report.objects_checked}")
    lines.append("algorithms:")
    for name, row in report.algorithms.items() or {"(none)": None}.items():
        counts = f": {row['objects']} objects, {row['bytes']} bytes" if row else ""
        lines.append(f"  {name}{counts}")
    lines.append("key ids:")
    for key_id, row in report.key_ids.items():
        lines.append(
            f"  {key_id}: {row['objects']} objects, {row['bytes']} bytes, sites "
            f"{','.join(row['sites'])}, oldest object {row['age_days']} days old"
        )
    lines.append("sites:")
    for site, row in report.sites.items():
        lines.append(
            f"  {site}: {row['objects']} objects, {row['bytes']} bytes, {row['shared']} shared"
        )
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    for problem in report.problems:
        lines.append(f"PROBLEM: {problem}")
    lines.append("audit: OK" if report.ok else f"audit: FAILED ({len(report.problems)} problems)")
    return "\n".join(lines)

