"""An append-only audit log whose entries are chained by SHA-256, so edits show.

Each line is one JSON object: ``seq``, ``time``, ``site`` (from the caller's certificate),
``action``, ``owner`` and ``object_id`` (what was targeted), ``key_id``, ``outcome``, ``detail``,
``prev_hash`` and ``entry_hash``. ``entry_hash`` is the SHA-256 of the entry's canonical JSON
without ``entry_hash``; ``prev_hash`` is the previous entry's ``entry_hash`` (64 zeros for the
first). Changing, removing or reordering any entry breaks a hash or a ``seq`` step; removing the
*last* entries is caught by the anchor, the head ``(seq, entry_hash)`` the service records in its
index after each append (see :func:`verify_chain`). Every append is fsynced before the call that
caused it returns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

GENESIS_HASH = "0" * 64
FIELDS = (
    "seq", "time", "site", "action", "owner", "object_id", "key_id", "outcome", "detail",
    "prev_hash", "entry_hash",
)
Anchor = Callable[[int, str], None]


@dataclass(frozen=True)
class AuditEntry:
    """One audited call."""

    seq: int
    time: str
    site: str
    action: str
    owner: str
    object_id: str
    key_id: str
    outcome: str
    detail: str
    prev_hash: str
    entry_hash: str = ""

    def computed_hash(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "entry_hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")) + "\n"


def _utc_now() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _last_line(path: Path) -> str | None:
    """The last complete line of ``path`` (reads only the file's tail)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        block = 1 << 16
        while True:
            start = max(0, size - block)
            handle.seek(start)
            data = handle.read(size - start)
            lines = data.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                last = lines[-1]
                return last.decode() if last else None
            block *= 4


def repair_torn_tail(path: Path) -> str | None:
    """Cut an incomplete last line (a crash mid-append); return a description or None.

    Only bytes after the last newline are removed: they are an entry whose append never
    finished, so no call that returned was audited by it.
    """
    if not path.exists():
        return None
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return None
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return None
        pos, keep = size, 0
        while pos > 0:
            step = min(1 << 16, pos)
            handle.seek(pos - step)
            chunk = handle.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = pos - step + cut + 1
                break
            pos -= step
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return f"audit log: removed an incomplete last line ({size - keep} bytes)"


class AuditLog:
    """Appends chained entries to ``path``; safe to share between threads of one process."""

    def __init__(self, path: Path, anchor: Anchor | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._anchor = anchor
        self._lock = threading.Lock()
        self._seq, self._head = 0, GENESIS_HASH
        if self.path.exists():
            last = _last_line(self.path)
            if last:
                entry = json.loads(last)
                self._seq, self._head = int(entry["seq"]), str(entry["entry_hash"])
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, entry_hash)`` of the last entry (``(0, GENESIS_HASH)`` when empty)."""
        return self._seq, self._head

    def append(
        self,
        *,
        site: str,
        action: str,
        outcome: str,
        owner: str = "",
        object_id: str = "",
        key_id: str = "",
        detail: str = "",
    ) -> AuditEntry:
        """Write one entry durably (fsync) and anchor it; return it."""
        with self._lock:
            entry = AuditEntry(
                seq=self._seq + 1, time=_utc_now(), site=site, action=action, owner=owner,
                object_id=object_id, key_id=key_id, outcome=outcome, detail=detail[:500],
                prev_hash=self._head,
            )
            entry = AuditEntry(**{**asdict(entry), "entry_hash": entry.computed_hash()})
            self._handle.write(entry.to_line())
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._seq, self._head = entry.seq, entry.entry_hash
            if self._anchor is not None:
                self._anchor(entry.seq, entry.entry_hash)
            return entry

    def close(self) -> None:
        with self._lock:
            self._handle.close()


@dataclass
class ChainReport:
    """Result of :func:`verify_chain`: ``ok`` only when ``problems`` is empty."""

    entries: int = 0
    head: tuple[int, str] = (0, GENESIS_HASH)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_entries(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for every line, including a final line without newline."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line


def verify_chain(
    path: Path,
    anchor: tuple[int, str] | None = None,
    latest_anchor: Callable[[], tuple[int, str] | None] | None = None,
) -> ChainReport:
    """Check every entry's hash, ``seq`` step and link; compare the head with ``anchor``.

    After a broken entry the check continues from that entry's own values, so one edit is
    reported once or twice, not once per following entry. ``anchor`` is the head the service
    recorded (read *before* the log): it must be in the log, and at most one entry (a crash
    between append and anchor) may follow the anchored head. With a live service, pass
    ``latest_anchor`` to re-read the anchor *after* the log, so entries appended meanwhile are
    not mistaken for entries appended outside the service.
    """
    report = ChainReport()
    if not Path(path).exists():
        if anchor is not None and anchor[0] > 0:
            report.problems.append(
                f"audit log {path} is missing but the index anchors seq {anchor[0]}"
            )
        return report
    prev_seq, prev_hash = 0, GENESIS_HASH
    anchored_hash_seen: str | None = None
    for number, line in read_entries(path):
        where = f"line {number}"
        if not line.endswith("\n"):
            report.problems.append(f"{where}: incomplete last line (not newline-terminated)")
        try:
            data = json.loads(line)
            if set(data) != set(FIELDS):
                raise ValueError(f"fields {sorted(data)}")
            entry = AuditEntry(**data)
        except (ValueError, TypeError) as exc:
            report.problems.append(f"{where}: not an audit entry ({exc})")
            continue
        report.entries += 1
        if entry.seq != prev_seq + 1:
            report.problems.append(
                f"{where}: seq {entry.seq} follows {prev_seq} (entries removed or reordered)"
            )
        if entry.prev_hash != prev_hash:
            report.problems.append(
                f"{where}: seq {entry.seq} does not link to the previous entry "
                "(an entry before it was changed, removed or reordered)"
            )
        if entry.computed_hash() != entry.entry_hash:
            report.problems.append(
                f"{where}: seq {entry.seq} content does not match its hash (edited)"
            )
        if anchor is not None and entry.seq == anchor[0]:
            anchored_hash_seen = entry.entry_hash
        prev_seq, prev_hash = entry.seq, entry.entry_hash
    report.head = (prev_seq, prev_hash)
    if anchor is not None and anchor[0] > 0:
        if anchored_hash_seen is None:
            report.problems.append(
                f"anchored entry seq {anchor[0]} is missing: the log ends at seq {prev_seq} "
                "(entries at the end were removed)"
            )
        elif anchored_hash_seen != anchor[1]:
            report.problems.append(f"entry seq {anchor[0]} differs from the anchored head")
        else:
            latest = latest_anchor() if latest_anchor is not None else None
            anchored_seq = max(anchor[0], latest[0]) if latest else anchor[0]
            if prev_seq > anchored_seq + 1:
                report.problems.append(
                    f"{prev_seq - anchored_seq} entries follow the anchored head seq "
                    f"{anchored_seq} (appended outside the service?)"
                )
    return report
