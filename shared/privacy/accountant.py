"""A site's privacy accountant: how much ε it has spent, persisted so restarts never forget.

One small interface over Opacus' RDP or PRV accountants. The state is a JSON file at the site
(written to a temp file, fsynced, then renamed), holding the mechanism, δ, the privacy unit, the
site's target ε and every DP-SGD phase as ``(noise multiplier, sample rate, steps)``. ε is always
recomputed from that history, so a reloaded accountant answers exactly as before the restart.

The budget is checked *before* training: :meth:`PrivacyAccountant.affordable_steps` says how many
steps of the next round fit under the target, and :meth:`record` refuses anything that would pass
it. A site therefore never exceeds its target, even if it is killed and restarted mid-federation.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.privacy.unit import PRIVACY_UNITS

MECHANISMS = ("rdp", "prv")
_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
"""Opacus' default RDP orders (``RDPAccountant.DEFAULT_ALPHAS``)."""
STATE_VERSION = 1


class PrivacyBudgetExceeded(FedcodecError):
    """Training was refused because it would spend more than the site's ε target."""


def _opacus_accountant(mechanism: str):
    from opacus.accountants import PRVAccountant, RDPAccountant

    return RDPAccountant() if mechanism == "rdp" else PRVAccountant()


@lru_cache(maxsize=256)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> tuple[float, ...]:
    """RDP of one Poisson-subsampled Gaussian step at Opacus' default orders (cached: the same
    (σ, q) recurs every round, and each evaluation costs ~1 s)."""
    from opacus.accountants.analysis.rdp import compute_rdp

    return tuple(compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                             orders=_ORDERS))


def _merged(history: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Phases with the same (σ, q) merged: composition only depends on their total steps."""
    totals: dict[tuple[float, float], int] = {}
    for z, q, n in history:
        if int(n) > 0:
            key = (float(z), float(q))
            totals[key] = totals.get(key, 0) + int(n)
    return [(z, q, n) for (z, q), n in totals.items()]


def epsilon_of(history: list[tuple[float, float, int]], delta: float, mechanism: str = "rdp") -> float:
    """ε after the DP-SGD phases in ``history`` (each ``(noise multiplier, sample rate, steps)``)."""
    steps = _merged(history)
    if not steps:
        return 0.0
    if mechanism == "prv":
        acc = _opacus_accountant(mechanism)
        acc.history = steps
        return float(acc.get_epsilon(delta=delta, eps_error=0.01))
    from opacus.accountants.analysis.rdp import get_privacy_spent

    rdp = sum(np.asarray(_rdp_per_step(z, q)) * n for z, q, n in steps)
    eps, _ = get_privacy_spent(orders=_ORDERS, rdp=rdp, delta=delta)
    return float(eps)


@dataclass
class PrivacyAccountant:
    """The accountant of one site for one privacy unit; ``path=None`` keeps it in memory only."""

    path: Path | None
    unit: str
    target_epsilon: float
    delta: float
    mechanism: str = "rdp"

    def __post_init__(self) -> None:
        if self.unit not in PRIVACY_UNITS:
            raise FedcodecError(f"unknown privacy unit {self.unit!r}")
        if self.mechanism not in MECHANISMS:
            raise FedcodecError(f"unknown accountant {self.mechanism!r}; choose rdp or prv")
        if not (self.target_epsilon > 0 and 0 < self.delta < 1):
            raise FedcodecError("privacy target needs epsilon > 0 and 0 < delta < 1")
        self.history: list[tuple[float, float, int]] = []
        self.rounds: list[dict] = []
        if self.path is not None:
            self.path = Path(self.path)
            if self.path.exists():
                self._load()

    # -- persistence -----------------------------------------------------------------------
    def _load(self) -> None:
        try:
            state = json.loads(self.path.read_text())
            history = [(float(z), float(q), int(n)) for z, q, n in state["history"]]
            unit, delta, mechanism = state["unit"], float(state["delta"]), state["mechanism"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(f"privacy accountant state {self.path} is unreadable: {exc}") from exc
        if (unit, delta, mechanism) != (self.unit, self.delta, self.mechanism):
            raise FedcodecError(
                f"privacy accountant {self.path} tracks unit={unit}, delta={delta}, {mechanism}; "
                f"this run asks for unit={self.unit}, delta={self.delta}, {self.mechanism} "
                "(spent budget cannot be converted; use a new state folder only with a new dataset)")
        self.history = history
        self.rounds = list(state.get("rounds", []))

    def save(self) -> None:
        """Write the state atomically (temp file + fsync + rename)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "version": STATE_VERSION, "unit": self.unit, "delta": self.delta,
            "mechanism": self.mechanism, "target_epsilon": self.target_epsilon,
            "epsilon": self.epsilon, "history": self.history, "rounds": self.rounds,
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".accountant-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(state, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- budget ----------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        """ε spent so far (for :attr:`unit`, at :attr:`delta`)."""
        return epsilon_of(self.history, self.delta, self.mechanism)

    def projected(self, noise_multiplier: float, sample_rate: float, steps: int) -> float:
        """ε after ``steps`` more DP-SGD steps with this noise and Poisson sampling rate."""
        return epsilon_of(self.history + [(noise_multiplier, sample_rate, steps)], self.delta,
                          self.mechanism)

    def affordable_steps(self, noise_multiplier: float, sample_rate: float, wanted: int) -> int:
        """The most steps (<= ``wanted``) that keep ε within the target; 0 when exhausted."""
        if wanted <= 0 or self.projected(noise_multiplier, sample_rate, 1) > self.target_epsilon:
            return 0
        if self.projected(noise_multiplier, sample_rate, wanted) <= self.target_epsilon:
            return wanted
        low, high = 1, wanted  # projected(low) fits, projected(high) does not
        while high - low > 1:
            mid = (low + high) // 2
            if self.projected(noise_multiplier, sample_rate, mid) <= self.target_epsilon:
                low = mid
            else:
                high = mid
        return low

    def record(self, noise_multiplier: float, sample_rate: float, steps: int,
               note: dict | None = None) -> float:
        """Add ``steps`` taken steps, persist, and return the new ε.

        Raises :class:`PrivacyBudgetExceeded` (and records nothing) if they would pass the target;
        callers check :meth:`affordable_steps` first, so this is the last line of defence.
        """
        after = self.projected(noise_multiplier, sample_rate, steps)
        if after > self.target_epsilon * (1 + 1e-9):
            raise PrivacyBudgetExceeded(
                f"{steps} more steps would spend epsilon={after:.3f} > target "
                f"{self.target_epsilon} ({self.unit}-level, delta={self.delta})")
        if steps > 0:
            self.history.append((float(noise_multiplier), float(sample_rate), int(steps)))
        self.rounds.append({**(note or {}), "steps": int(steps), "epsilon": after})
        self.save()
        return after

    def describe(self) -> str:
        """``ε=1.23 (patient-level, δ=1e-05, rdp; target 8)`` — every printed ε names its unit."""
        return (f"epsilon={self.epsilon:.3f} ({self.unit}-level, delta={self.delta:g}, "
                f"{self.mechanism}; target {self.target_epsilon:g})")
