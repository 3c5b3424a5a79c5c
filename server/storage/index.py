"""The SQLite index: which objects exist, who owns them, who they are shared with.

A row is inserted only after the object's bytes are durable (see :mod:`.backend`), and the
client is acknowledged only after the row is committed, so "listed" always means "complete".
A replacement is journalled: its new row goes to ``pending_replaces`` before the file is swapped
and moves into ``objects`` after, so recovery knows which of the two versions a crash left.
WAL mode with ``synchronous=FULL`` makes each committed row survive a crash or power loss. One
connection guarded by a lock serves all threads: index writes are tiny next to object I/O.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fedcodec.server.storage.errors import ObjectExists

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    site TEXT NOT NULL,
    object_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    key_ids TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    format_version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    content_digest TEXT NOT NULL,
    PRIMARY KEY (site, object_id)
);
CREATE TABLE IF NOT EXISTS pending_replaces (
    site TEXT NOT NULL,
    object_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    key_ids TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    format_version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    content_digest TEXT NOT NULL,
    PRIMARY KEY (site, object_id)
);
CREATE TABLE IF NOT EXISTS shares (
    site TEXT NOT NULL,
    object_id TEXT NOT NULL,
    grantee TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (site, object_id, grantee),
    FOREIGN KEY (site, object_id) REFERENCES objects (site, object_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS shares_by_grantee ON shares (grantee, site, object_id);
CREATE TABLE IF NOT EXISTS sites (
    site TEXT PRIMARY KEY,
    first_seen_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    entry_hash TEXT NOT NULL,
    signature TEXT NOT NULL DEFAULT ''
);
"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ObjectRecord:
    """One indexed object; ``sha256`` is lowercase hex of the ciphertext."""

    site: str
    object_id: str
    size: int
    sha256: str
    key_ids: tuple[str, ...]
    algorithm: str
    format_version: int
    created_ms: int
    content_digest: str = ""
    shared_with: tuple[str, ...] = field(default=())


class ObjectIndex:
    """SQLite-backed object index at ``path`` (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(audit_head)")}
        if "signature" not in columns:  # an index written before heads were signed
            self._db.execute("ALTER TABLE audit_head ADD COLUMN signature TEXT NOT NULL DEFAULT ''")
        self._known_sites: set[str] = {
            row[0] for row in self._db.execute("SELECT site FROM sites")
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _shares(self, site: str, object_id: str) -> tuple[str, ...]:
        rows = self._db.execute(
            "SELECT grantee FROM shares WHERE site=? AND object_id=? ORDER BY grantee",
            (site, object_id),
        )
        return tuple(r[0] for r in rows)

    def _record(self, row: tuple, with_shares: bool = True) -> ObjectRecord:
        site, object_id, size, sha, key_ids, algorithm, version, created, content = row
        return ObjectRecord(
            site, object_id, size, sha, tuple(json.loads(key_ids)), algorithm, version, created,
            content, self._shares(site, object_id) if with_shares else (),
        )

    _COLUMNS = (
        "site, object_id, size, sha256, key_ids, algorithm, format_version, created_ms, "
        "content_digest"
    )

    @staticmethod
    def _values(record: ObjectRecord) -> tuple:
        return (
            record.site, record.object_id, record.size, record.sha256,
            json.dumps(list(record.key_ids)), record.algorithm, record.format_version,
            record.created_ms, record.content_digest,
        )

    def insert(self, record: ObjectRecord) -> None:
        """Add a committed object; :class:`ObjectExists` if the id is already indexed."""
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT INTO objects ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    self._values(record),
                )
            except sqlite3.IntegrityError:
                raise ObjectExists(f"object {record.object_id!r} already exists") from None

    def begin_replace(self, record: ObjectRecord) -> None:
        """Journal the row a replacement will have, before its file is swapped in."""
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO pending_replaces ({self._COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._values(record),
            )

    def finish_replace(self, site: str, object_id: str) -> None:
        """Make the journalled row current (after the new file is in place)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "UPDATE objects SET (size, sha256, key_ids, algorithm, format_version, "
                    "content_digest) = (SELECT size, sha256, key_ids, algorithm, format_version, "
                    "content_digest FROM pending_replaces p WHERE p.site = objects.site AND "
                    "p.object_id = objects.object_id) WHERE site=? AND object_id=?",
                    (site, object_id),
                )
                self._db.execute(
                    "DELETE FROM pending_replaces WHERE site=? AND object_id=?", (site, object_id)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def drop_replace(self, site: str, object_id: str) -> None:
        """Forget a journalled replacement whose file never took its place."""
        with self._lock:
            self._db.execute(
                "DELETE FROM pending_replaces WHERE site=? AND object_id=?", (site, object_id)
            )

    def pending_replaces(self) -> list[ObjectRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._COLUMNS} FROM pending_replaces ORDER BY site, object_id"
            ).fetchall()
            return [self._record(r, with_shares=False) for r in rows]

    def get(self, site: str, object_id: str) -> ObjectRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {self._COLUMNS} FROM objects WHERE site=? AND object_id=?",
                (site, object_id),
            ).fetchone()
            return self._record(row) if row else None

    def list_site(self, site: str, prefix: str, after: str, limit: int) -> list[ObjectRecord]:
        """Objects of ``site`` with ids starting with ``prefix`` and sorting after ``after``."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._COLUMNS} FROM objects WHERE site=? AND object_id > ? "
                "AND substr(object_id, 1, ?) = ? ORDER BY object_id LIMIT ?",
                (site, after, len(prefix), prefix, limit),
            ).fetchall()
            return [self._record(r) for r in rows]

    def list_shared_with(
        self, grantee: str, prefix: str, after: tuple[str, str], limit: int
    ) -> list[ObjectRecord]:
        """Objects other sites shared with ``grantee``, ordered by (owner, id)."""
        cols = ", ".join(f"o.{c.strip()}" for c in self._COLUMNS.split(","))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {cols} FROM shares s JOIN objects o "
                "ON o.site = s.site AND o.object_id = s.object_id "
                "WHERE s.grantee=? AND (o.site, o.object_id) > (?, ?) "
                "AND substr(o.object_id, 1, ?) = ? ORDER BY o.site, o.object_id LIMIT ?",
                (grantee, after[0], after[1], len(prefix), prefix, limit),
            ).fetchall()
            return [self._record(r) for r in rows]

    def is_shared(self, site: str, object_id: str, grantee: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM shares WHERE site=? AND object_id=? AND grantee=?",
                (site, object_id, grantee),
            ).fetchone()
            return row is not None

    def delete(self, site: str, object_id: str) -> ObjectRecord | None:
        """Remove the row and its shares; return what was removed (None if absent)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    f"SELECT {self._COLUMNS} FROM objects WHERE site=? AND object_id=?",
                    (site, object_id),
                ).fetchone()
                record = self._record(row) if row else None
                if row:
                    self._db.execute(
                        "DELETE FROM objects WHERE site=? AND object_id=?", (site, object_id)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return record

    def set_share(self, site: str, object_id: str, grantee: str, granted: bool) -> None:
        with self._lock:
            if granted:
                self._db.execute(
                    "INSERT OR IGNORE INTO shares (site, object_id, grantee, created_ms) "
                    "VALUES (?, ?, ?, ?)",
                    (site, object_id, grantee, now_ms()),
                )
            else:
                self._db.execute(
                    "DELETE FROM shares WHERE site=? AND object_id=? AND grantee=?",
                    (site, object_id, grantee),
                )

    def note_site(self, site: str) -> None:
        """Remember that ``site`` has authenticated (only known sites can receive shares)."""
        if site in self._known_sites:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO sites (site, first_seen_ms) VALUES (?, ?)", (site, now_ms())
            )
            self._known_sites.add(site)

    def site_known(self, site: str) -> bool:
        return site in self._known_sites

    def records(self) -> Iterator[ObjectRecord]:
        """Every indexed object, ordered by (site, id)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._COLUMNS} FROM objects ORDER BY site, object_id"
            ).fetchall()
            records = [self._record(r) for r in rows]
        yield from records

    def set_audit_head(self, seq: int, entry_hash: str, signature: str = "") -> None:
        """Anchor the audit log's last entry, so truncating the log's tail is detectable.

        ``signature`` (hex, by the service's signing key) makes the anchor unforgeable: a log
        re-chained after an edit needs a new head, which only the key can sign.
        """
        with self._lock:
            self._db.execute(
                "INSERT INTO audit_head (id, seq, entry_hash, signature) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq=excluded.seq, entry_hash=excluded.entry_hash, "
                "signature=excluded.signature",
                (seq, entry_hash, signature),
            )

    def audit_head_signature(self) -> str:
        """Hex signature of the anchored head ('' when unsigned or not anchored)."""
        with self._lock:
            row = self._db.execute("SELECT signature FROM audit_head").fetchone()
            return row[0] if row else ""

    def audit_head(self) -> tuple[int, str] | None:
        with self._lock:
            row = self._db.execute("SELECT seq, entry_hash FROM audit_head").fetchone()
            return (row[0], row[1]) if row else None

    def signed_audit_head(self) -> tuple[int, str, str] | None:
        """``(seq, entry_hash, signature)`` of the anchor, read together."""
        with self._lock:
            row = self._db.execute("SELECT seq, entry_hash, signature FROM audit_head").fetchone()
            return (row[0], row[1], row[2]) if row else None
