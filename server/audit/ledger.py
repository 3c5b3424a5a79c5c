"""What the audit log says must exist: replay of every acknowledged put, replacement and delete.

The log is the one record a rollback of the index cannot quietly rewrite (it is hash-chained and
its head is signed), so it is the reference for the cross-check of ``audit`` and for recovery:
an object whose last acknowledged event is a put or replacement must have its index row and its
file (with the logged SHA-256); one whose last event is a delete must have neither. ``recover``
entries are deliberately ignored: a repair that dropped an acknowledged object does not make the
loss acceptable, it stays a problem until the object is restored or deleted by its site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fedcodec.server.audit.log import read_entries

WRITES = ("put", "replace")
#: Outcome of a recovery entry that logs an indexed object whose put entry a crash cut off.
ADOPTED = "adopted"


@dataclass(frozen=True)
class LedgerState:
    """The last acknowledged event of one object."""

    present: bool
    seq: int
    action: str
    sha256: str = ""  # logged for puts and replacements ("" in logs older than this field)


def put_detail(sha256: str, size: int) -> str:
    """The ``detail`` of an acknowledged put or replacement (what replay reads back)."""
    return f"sha256={sha256} size={size}"


def _logged_sha(detail: str) -> str:
    for part in detail.split():
        if part.startswith("sha256="):
            return part[len("sha256="):]
    return ""


def replay(path: Path) -> dict[tuple[str, str], LedgerState]:
    """``(owner, object_id) -> LedgerState`` for every object an acknowledged call touched.

    Unparseable lines are skipped here: the chain check reports them.
    """
    states: dict[tuple[str, str], LedgerState] = {}
    if not Path(path).exists():
        return states
    for _, line in read_entries(path):
        try:
            entry = json.loads(line)
            action, outcome = entry["action"], entry["outcome"]
            key = (entry["owner"] or entry["site"], entry["object_id"])
            seq = int(entry["seq"])
        except (ValueError, KeyError, TypeError):
            continue
        if action == "recover" and "replacement completed" in str(entry.get("detail", "")):
            if key in states:  # recovery finished a swap never acknowledged: either hash is fine
                states[key] = LedgerState(True, states[key].seq, states[key].action)
            continue
        if action == "recover" and outcome == ADOPTED:
            states[key] = LedgerState(True, seq, action, _logged_sha(str(entry.get("detail", ""))))
            continue
        if outcome != "ok" or not key[1]:
            continue
        if action in WRITES:
            states[key] = LedgerState(True, seq, action, _logged_sha(str(entry.get("detail", ""))))
        elif action == "delete":
            states[key] = LedgerState(False, seq, action)
    return states
