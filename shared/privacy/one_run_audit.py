"""The statistics of the one-run privacy audit (Steinke, Nasr and Jagielski, "Privacy Auditing
with One (1) Training Run", NeurIPS 2023).

m canaries are each included in training independently with probability 1/2; after training the
auditor scores every canary, guesses "in" for the r+ highest and "out" for the r- lowest scores
(abstaining on the rest, r = r+ + r- guesses) and counts the v correct guesses. If training is
(ε, δ)-DP, v is stochastically dominated by Binomial(r, e^ε / (1 + e^ε)) up to a δ term (their
Theorem 5.2), so any ε whose p-value for "≥ v correct" falls below 1 - confidence is refuted: the
largest such ε is an empirical **lower bound** on the ε the training really spends. It is a
lower bound only — a small one does not prove the claimed ε, a large one refutes it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[at least ``v`` of ``r`` guesses correct] under (ε, δ)-DP (Theorem 5.2's bound)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(stats.binom.sf(v - 1, r, q))
    # δ term: 2 m δ times the largest average probability mass just below v,
    # max over i of P[v - i <= Binomial(r, q) < v] / i
    if v == 0 or delta == 0:
        return min(1.0, tail)
    below = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[= v-1], P[= v-2], ...
    worst = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(1.0, tail + 2.0 * m * delta * worst)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95,
                        upper: float = 50.0) -> float:
    """Largest ε refuted at ``confidence`` by ``v`` correct of ``r`` guesses (0 if none is)."""
    beta = 1.0 - confidence
    if r == 0 or p_value(m, r, v, 0.0, delta) > beta:
        return 0.0
    low, high = 0.0, upper
    if p_value(m, r, v, high, delta) <= beta:
        return high
    for _ in range(60):  # p_value grows with ε: bisect the crossing
        mid = (low + high) / 2
        if p_value(m, r, v, mid, delta) <= beta:
            low = mid
        else:
            high = mid
    return low
