"""What de-identification did, for the audit trail: counts only, never a value it removed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

ACTION_NAMES = {
    "X": "removed",
    "Z": "emptied",
    "D": "dummy value",
    "U": "UID replaced",
    "P": "patient ID pseudonym",
    "K": "kept (listed, sequence cleaned)",
    "C": "kept (safe private, checked)",
    "R": "identifying value replaced in kept text",
}


@dataclass
class DeidReport:
    """Counts per action and per (action, reason, attribute), summed over datasets.

    ``reason`` says which rule fired: ``table`` (PS3.15 Table E.1-1), ``private``, ``overlay``,
    ``unlisted-uid``, ``unlisted-name``, ``unlisted-date``, ``unknown-tag``, ``group-length``,
    ``command-group``, ``file-meta``, and ``reappearing-identifier`` (action ``R``: the value of a
    removed identifying attribute found, and overwritten, inside a kept text attribute).
    """

    datasets: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    details: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def record(self, action: str, reason: str, attribute: str) -> None:
        self.actions[action] += 1
        self.details[(action, reason, attribute)] += 1

    def merge(self, other: DeidReport) -> None:
        self.datasets += other.datasets
        self.actions.update(other.actions)
        self.details.update(other.details)
        self.warnings.extend(other.warnings)

    def to_dict(self) -> dict:
        """JSON-ready: totals per action and the detail rows, sorted for stable output."""
        return {
            "datasets": self.datasets,
            "actions": dict(sorted(self.actions.items())),
            "details": [
                {"action": a, "reason": r, "attribute": name, "count": n}
                for (a, r, name), n in sorted(self.details.items())
            ],
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """One line per action, e.g. ``removed (X): 1234``."""
        return "\n".join(
            f"{ACTION_NAMES.get(a, a)} ({a}): {n}" for a, n in sorted(self.actions.items())
        )
