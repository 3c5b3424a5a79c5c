"""Budget planning: the accountant's projection of ε for a site of a given size.

A site with N privacy units, sampled at rate ``q = batch_units / N`` for ``rounds x local_steps``
DP-SGD steps with noise multiplier σ, spends the ε the RDP (or PRV) accountant computes for that
history. The shared demo data have one or two patients per site, where patient-level DP is
hopeless (q = 1); this shows what the same recipe costs at realistic hospital sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.privacy.accountant import epsilon_of


@dataclass(frozen=True)
class PlanRow:
    units: int
    sample_rate: float
    steps: int
    noise_multiplier: float
    epsilon: float


def plan_epsilon(units: list[int], rounds: int, local_steps: int, batch_units: float,
                 noise_multiplier: float, delta: float, mechanism: str = "rdp") -> list[PlanRow]:
    """ε after the whole federation for each site size in ``units``."""
    if rounds <= 0 or local_steps <= 0 or batch_units <= 0 or noise_multiplier <= 0:
        raise FedcodecError("plan needs positive rounds, local steps, batch units and noise")
    rows = []
    for n in units:
        if n <= 0:
            raise FedcodecError(f"a site needs at least one unit, not {n}")
        q = min(1.0, batch_units / n)
        steps = rounds * local_steps
        rows.append(PlanRow(n, q, steps, noise_multiplier,
                            epsilon_of([(noise_multiplier, q, steps)], delta, mechanism)))
    return rows


def epsilon_curve(units: int, rounds: int, local_steps: int, batch_units: float,
                  noise_multiplier: float, delta: float, mechanism: str = "rdp",
                  points: int = 25) -> list[tuple[int, float]]:
    """(round, ε after that round) at up to ``points`` rounds, for one site size."""
    q = min(1.0, batch_units / units)
    marks = sorted({max(1, round(rounds * i / points)) for i in range(1, points + 1)})
    return [(r, epsilon_of([(noise_multiplier, q, r * local_steps)], delta, mechanism)) for r in marks]


def plot_plan(path: Path, curves: dict[int, list[tuple[int, float]]], unit: str, delta: float,
              noise_multiplier: float, target: float | None = None) -> Path:
    """PNG of ε against rounds, one line per site size (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for n, curve in sorted(curves.items()):
        ax.plot([r for r, _ in curve], [e for _, e in curve], marker="o", ms=3, label=f"{n:,} {unit}s")
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target ε = {target:g}")
    ax.set_xlabel("federated rounds")
    ax.set_ylabel(f"ε ({unit}-level, δ = {delta:g})")
    ax.set_yscale("log")
    ax.set_title(f"Projected privacy spend per site (σ = {noise_multiplier:g})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
