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
from dataclasses import dataclass, field
from pathlib import Path

from fedcodec.server.audit.log import read_entries

#: Acknowledged writes; ``adopt`` is a replica indexing an object another replica of the same
#: bucket stored (server/storage/replica_sync.py), ``forget`` its view of such a delete.
WRITES = ("put", "replace", "adopt")
DELETES = ("delete", "forget")
#: Outcome of a recovery entry that logs an indexed object whose put entry a crash cut off.
ADOPTED = "adopted"
#: Outcome of a recovery entry that re-indexed an acknowledged object the index had lost.
RESTORED = "restored"


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


@dataclass
class Ledger:
    """The replayed log: object states, share grants, and recovery alarms."""

    states: dict[tuple[str, str], LedgerState] = field(default_factory=dict)
    #: ``(owner, object_id) -> grantees`` the log granted and did not revoke or delete.
    shares: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: ``(seq, outcome, detail)`` of recovery entries an operator must look at.
    alarms: list[tuple[int, str, str]] = field(default_factory=list)

    def get(self, key: tuple[str, str]) -> LedgerState | None:
        return self.states.get(key)


#: Recovery outcomes that stay audit problems until an operator reviewed them.
ALARMS = ("rollback", "data_loss")


def replay(path: Path) -> Ledger:
    """Replay every acknowledged call of the log at ``path``.

    Unparseable lines are skipped here: the chain check reports them.
    """
    ledger = Ledger()
    states, shares = ledger.states, ledger.shares
    if not Path(path).exists():
        return ledger
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
        if action == "recover" and outcome in ALARMS:
            ledger.alarms.append((seq, outcome, str(entry.get("detail", ""))))
        if action == "recover" and outcome in (ADOPTED, RESTORED):
            states[key] = LedgerState(True, seq, action, _logged_sha(str(entry.get("detail", ""))))
            continue
        if outcome != "ok" or not key[1]:
            continue
        detail = str(entry.get("detail", ""))
        if action in WRITES:
            states[key] = LedgerState(True, seq, action, _logged_sha(detail))
        elif action in DELETES:
            states[key] = LedgerState(False, seq, action)
            shares.pop(key, None)
        elif action == "share" and " " in detail:
            verb, grantee = detail.split(" ", 1)
            granted = shares.setdefault(key, set())
            (granted.add if verb == "grant" else granted.discard)(grantee)
    return ledger
