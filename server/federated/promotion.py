"""The promotion gate: a round's model is published only if it codes the sites' held-out series
in fewer bits than the model published so far.

After every round each reporting site codes its held-out series (never trained on) under both the
round's candidate and the currently promoted model (the server sends both) and returns the two
bits/pixel and its held-out pixel count. The gate compares the **size-weighted** means over the
sites that reported in that round — the same sites and pixels for both models, so a site missing
from one round cannot tilt the comparison. Round 0's promoted model is the starting point (the
shipped weights by default), so a federation that only makes the codec worse publishes nothing.

Training itself continues from the latest aggregate (DP noise makes single rounds noisy); the gate
only decides what is published: ``promoted.npz`` and ``promotion.json`` in the federation folder,
MLflow metrics ``promotion/*`` and, at the end, the registered model.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedcodec.server.federated.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.errors import CorruptDataError


@dataclass
class PromotionDecision:
    """What the gate decided after one round (one line of ``promotion.json``)."""

    round: int
    promoted: bool
    reason: str
    candidate_bpp: float | None = None
    promoted_bpp: float | None = None
    """Size-weighted held-out bpp of the model promoted *before* this round, same sites."""
    sites: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per reporting site: ``candidate_bpp``, ``promoted_bpp``, ``pixels``."""


def _usable(report: dict[str, Any]) -> bool:
    try:
        values = [float(report[k]) for k in ("heldout_bpp", "promoted_bpp", "heldout_pixels")]
    except (KeyError, TypeError, ValueError):
        return False
    return all(math.isfinite(v) for v in values) and values[2] > 0


def weighted_bpp(reports: list[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over ``reports`` weighted by each site's held-out pixel count."""
    weights = np.array([float(r["heldout_pixels"]) for r in reports])
    values = np.array([float(r[key]) for r in reports])
    return float(np.sum(weights * values) / np.sum(weights))


class PromotionGate:
    """Holds the promoted parameters and the decision log of one federation (resumable)."""

    def __init__(self, folder: Path, initial: list[np.ndarray], enabled: bool = True,
                 min_gain: float = 0.0) -> None:
        self.folder = Path(folder)
        self.enabled = enabled
        self.min_gain = min_gain
        self.promoted = [np.asarray(a, dtype=np.float32) for a in initial]
        self.promoted_round = 0
        self.decisions: list[PromotionDecision] = []
        saved = load_checkpoint(self.params_path)
        if saved is not None:
            self.promoted, self.promoted_round = saved.parameters, saved.round
        if self.log_path.exists():
            try:
                self.decisions = [PromotionDecision(**d) for d in
                                  json.loads(self.log_path.read_text())["decisions"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptDataError(f"promotion log {self.log_path} is unreadable: {exc}") from None

    @property
    def params_path(self) -> Path:
        return self.folder / "promoted.npz"

    @property
    def log_path(self) -> Path:
        return self.folder / "promotion.json"

    def decide(self, round_index: int, candidate: list[np.ndarray],
               reports: list[dict[str, Any]]) -> PromotionDecision:
        """Promote ``candidate`` (the model after ``round_index``) if the sites' reports say so."""
        usable = [r for r in reports if _usable(r)]
        sites = {str(r.get("site", i)): {"candidate_bpp": float(r["heldout_bpp"]),
                                         "promoted_bpp": float(r["promoted_bpp"]),
                                         "pixels": float(r["heldout_pixels"])}
                 for i, r in enumerate(usable)}
        cand = weighted_bpp(usable, "heldout_bpp") if usable else None
        prom = weighted_bpp(usable, "promoted_bpp") if usable else None
        if not self.enabled:
            promoted, reason = True, "promotion gate off: every round is published"
        elif not usable:
            promoted, reason = False, "no site reported held-out bpp for both models"
        elif cand < prom - self.min_gain:
            promoted = True
            reason = (f"held-out bpp {cand:.4f} < {prom:.4f} of round {self.promoted_round}'s model "
                      f"over {len(usable)} site(s)")
        else:
            promoted = False
            reason = (f"held-out bpp {cand:.4f} does not improve on {prom:.4f} of round "
                      f"{self.promoted_round}'s model (min gain {self.min_gain:g}) over "
                      f"{len(usable)} site(s)")
        decision = PromotionDecision(round_index, promoted, reason, cand, prom, sites)
        if promoted:
            self.promoted = [np.asarray(a, dtype=np.float32).copy() for a in candidate]
            self.promoted_round = round_index
            save_checkpoint(self.params_path, Checkpoint(round_index, self.promoted))
        self.decisions.append(decision)
        self.save_log()
        return decision

    def save_log(self) -> None:
        body = {"promoted_round": self.promoted_round,
                "decisions": [asdict(d) for d in self.decisions]}
        write_atomic(self.log_path, (json.dumps(body, indent=1) + "\n").encode())
