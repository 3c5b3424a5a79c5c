"""Rate and quality control for bounded-error coding: which tau a slice or a series gets.

The bounded-error coder (``neural:tau=N``) guarantees every pixel within tau; a user asks for a
quality or a size instead. One target, four kinds:

``psnr=P``       every slice at or above P dB (peak ``2**bits - 1``): the largest tau per slice
                 whose *measured* PSNR (the encoder has the reconstruction) meets P;
``bpp=B``        the series at or below B bits per pixel, tau per slice so that the mean slice
                 PSNR is as high as the budget allows (:func:`allocate_slices`); with
                 ``allocate=series`` one tau for the whole series, the smallest that fits;
``ratio=R``      the same with B = (bits allocated) / R, allocated = 8 x the sample size;
``max_error=T``  tau = T everywhere.

PSNR is checked on what was actually coded, so the target holds on every slice, not on average.
The searches assume the measured quantity is monotone in tau (it is, up to noise of a few
hundredths of a dB) and return a tau that was *tried and met the target*, never an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedcodec.shared import metrics
from fedcodec.shared.errors import FedcodecError

KINDS = ("psnr", "bpp", "ratio", "max_error")
MIN_PSNR, MAX_PSNR = 20.0, 140.0
SERIES_SAMPLE_BLOCKS = 4
SERIES_SAMPLE_SLICES = 4
"""The bpp search codes SERIES_SAMPLE_BLOCKS runs of SERIES_SAMPLE_SLICES consecutive slices
(the whole series when it is not larger) per trial tau, then the whole series once."""


@dataclass(frozen=True)
class LossyTarget:
    """One rate or quality target (see the module docstring)."""

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FedcodecError(
                f"unknown lossy target {self.kind!r}; use one of {', '.join(KINDS)}")
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise FedcodecError(f"lossy target {self.kind} must be a number, not {v!r}")
        if self.kind == "psnr" and not MIN_PSNR <= v <= MAX_PSNR:
            raise FedcodecError(f"psnr target must be {MIN_PSNR:g}..{MAX_PSNR:g} dB, not {v:g}")
        if self.kind == "bpp" and not 0 < v <= 16:
            raise FedcodecError(f"bpp target must be in (0, 16], not {v:g}")
        if self.kind == "ratio" and not v > 1:
            raise FedcodecError(f"ratio target must be above 1, not {v:g}")
        if self.kind == "max_error" and (not isinstance(v, int) or not 1 <= v < 1 << 16):
            raise FedcodecError(f"max_error target must be an integer 1..65535, not {v:g}")

    @classmethod
    def from_params(cls, **given: float | None) -> LossyTarget:
        """Exactly one of psnr=, bpp=, ratio=, max_error= (the others None)."""
        named = [(k, v) for k, v in given.items() if v is not None]
        if len(named) != 1:
            raise FedcodecError("lossy coding takes exactly one target: psnr=DB, bpp=B, ratio=R "
                                f"or max_error=T (got {', '.join(k for k, _ in named) or 'none'})")
        kind, value = named[0]
        if kind == "max_error" and isinstance(value, float) and value.is_integer():
            value = int(value)
        return cls(kind, value if kind == "max_error" else float(value))  # type: ignore[arg-type]

    @property
    def spec_text(self) -> str:
        """``psnr=50`` etc., as it appears in a codec spec."""
        return f"{self.kind}={self.value:g}"

    def bpp_limit(self, sample_bits: int) -> float:
        """The bits-per-pixel ceiling of a ``bpp`` or ``ratio`` target."""
        if self.kind == "bpp":
            return float(self.value)
        return sample_bits / float(self.value)


def psnr_tau_cap(psnr: float, bits: int, factor: int = 2) -> int:
    """The largest tau a ``psnr`` target may pick: ``factor`` times the tau whose error, if it
    were uniform on [-tau, tau] (MSE = tau (tau + 1) / 3), would just meet the target (measured
    PSNR runs 1-3 dB above that estimate on MR), so a blank slice does not get an arbitrarily
    loose bound. With level bounds (:mod:`.level_bounds`) only level 0 reaches tau, so the
    coder passes 4: at ``psnr=45`` the 12-bit PyPI MR slices took bounds up to 157 = 4 * 39 + 1,
    this cap (``experiments/lossy_rd.py``), where twice would have stopped them at 79."""
    peak = (1 << bits) - 1
    mse = peak * peak / 10 ** (psnr / 10)
    uniform = int((math.sqrt(1 + 12 * mse) - 1) / 2)
    return max(0, min(factor * uniform + 1, peak - 1))


def psnr_tau_estimate(psnr: float, bits: int) -> int:
    """A first guess for the per-slice search (the uniform-error tau, ~1.3x below the answer)."""
    return max(0, (psnr_tau_cap(psnr, bits) - 1) // 2)


Trial = Callable[[int], tuple[bytes, np.ndarray]]
"""Code one slice at tau: (stream, reconstruction)."""


def _gallop(passes: Callable[[int], bool], start: int, cap: int) -> int:
    """The largest tau in [0, cap] with ``passes(tau)``, searching from ``start``; ``passes(0)``
    must hold. Probes start, then doubling steps, then bisects the bracket."""
    tau = min(max(start, 0), cap)
    if passes(tau):
        low, step = tau, 1
        while low + step <= cap and passes(low + step):
            low, step = low + step, step * 2
        high = min(low + step, cap + 1)  # fails, or past the cap
    else:
        high, step = tau, 1
        while high - step > 0 and not passes(high - step):
            high, step = high - step, step * 2
        low = max(high - step, 0)  # passes (tau 0 always does)
    while high - low > 1:
        mid = (low + high) // 2
        if passes(mid):
            low = mid
        else:
            high = mid
    return low


def slice_for_psnr(trial: Trial, original: np.ndarray, bits: int, psnr: float,
                   start: int, cap_factor: int = 2) -> tuple[int, bytes, np.ndarray]:
    """The largest tau (<= :func:`psnr_tau_cap`) whose coded slice meets ``psnr``: (tau, stream,
    reconstruction). Typically 2 trials when ``start`` is the previous slice's tau."""
    tried: dict[int, tuple[bytes, np.ndarray]] = {}

    def passes(tau: int) -> bool:
        if tau not in tried:
            tried[tau] = trial(tau)
        return tau == 0 or metrics.psnr(original, tried[tau][1], bits) >= psnr

    tau = _gallop(passes, start, psnr_tau_cap(psnr, bits, cap_factor))
    if tau not in tried:  # only tau 0 can pass untried
        tried[tau] = trial(tau)
    return (tau, *tried[tau])


def series_for_bpp(sample_bpp: Callable[[int], float], full_bpp: Callable[[int], float],
                   limit: float, bits: int, start: int = 1,
                   prefetch: Callable[[list[int]], None] = lambda taus: None) -> int:
    """The smallest tau whose whole-series bpp is at or below ``limit`` (found by the full
    coding; the caller keeps the streams of each tau it coded).

    ``sample_bpp(tau)`` estimates from a subsample (cheap) and picks a candidate; ``full_bpp(tau)``
    codes the series: the candidate moves up until the limit holds, then down while a smaller
    tau still holds. ``prefetch(taus)`` is told, before each full coding, that tau and the one
    the walk would need next; a caller with a free core codes both at once (the answer does not
    depend on it).
    """
    top = (1 << bits) - 2
    if sample_bpp(0) <= limit:
        tau = 0
    else:
        tau = min(_gallop(lambda t: t == 0 or sample_bpp(t) > limit, start, top) + 1, top)
    prefetch([tau, tau - 1] if tau > 0 else [tau])
    while full_bpp(tau) > limit:
        if tau >= top:
            raise FedcodecError(f"cannot reach {limit:.4g} bpp even with tau {tau}")
        tau = min(top, max(tau + 1, tau * 9 // 8))
        prefetch([tau, min(top, max(tau + 1, tau * 9 // 8))])
    while tau > 0:
        prefetch([tau - 1, tau - 2] if tau > 1 else [tau - 1])
        if full_bpp(tau - 1) > limit:
            break
        tau -= 1
    return tau


PSNR_CEILING = 150.0
"""A slice reproduced exactly counts as this many dB in the allocation (not infinity)."""
MIN_GAIN_DB = 0.25
"""A per-slice choice is kept only if it raises the mean slice PSNR by this much over one tau:
where every slice buys dB at about the same price (noise-bound series) the optimum is flat, and
a choice that wins by hundredths of a dB would loosen the worst slice's bound for nothing
(measured on a Philips B0 series, 64 slices at 0.5 bpp: +0.03 dB mean, worst slice -5.6 dB)."""
LADDER = (1 / 256, 1 / 64, 1 / 16, 1 / 4, 1 / 2, 1.0, 2.0)
"""The taus a per-slice allocation first chooses among, as multiples of the series' one-tau
answer: eight octaves below it (an easy slice buys many dB for few bits) and one above (a noisy
slice gives some back); a slice's bound is at most twice the one-tau bound. The coder then
refines each slice's choice halfway to its neighbours (bounded_lossy)."""


def ladder_taus(series_tau: int, bits: int) -> list[int]:
    """The candidate taus of :func:`allocate_slices` around the one-tau answer, ascending."""
    top = (1 << bits) - 2
    return sorted({min(top, max(1, round(series_tau * m))) for m in LADDER} | {series_tau})


def allocate_slices(bits: np.ndarray, quality: np.ndarray, budget: float) -> np.ndarray:
    """Per slice (row), the candidate (column) to code it with so that the summed quality
    (PSNR in dB) is as high as possible with the summed bits at or below ``budget``.

    The mean of slice PSNRs is what a reader sees slice by slice and what the benchmarks
    report; a one-tau series spends as much on a slice that is nearly free to make perfect as
    on a noisy one. Lagrangian choice (one price per bit for every slice, bisected until the
    budget holds), then the leftover budget spent greedily on the best dB per bit. Returns
    column indices; some column of every row must fit (the caller's one-tau column does).
    """
    bits = np.asarray(bits, dtype=np.float64)
    quality = np.minimum(np.asarray(quality, dtype=np.float64), PSNR_CEILING)
    rows = np.arange(bits.shape[0])

    def choose(price: float) -> np.ndarray:
        return np.argmax(quality - price * bits, axis=1)

    cheapest = np.argmin(bits, axis=1)
    if bits[rows, cheapest].sum() > budget:
        raise FedcodecError("no per-slice allocation fits the budget")
    low, high = 1e-12, 1e6  # dB per bit: a price of `high` picks the cheapest candidates
    if bits[rows, choose(low)].sum() <= budget:
        pick = choose(low)
    else:
        for _ in range(80):
            mid = math.sqrt(low * high)
            if bits[rows, choose(mid)].sum() <= budget:
                high = mid
            else:
                low = mid
        pick = choose(high)
        if bits[rows, pick].sum() > budget:
            pick = cheapest
    slack = budget - bits[rows, pick].sum()
    while True:  # greedy upgrades with what is left
        gain = quality - quality[rows, pick][:, None]
        cost = bits - bits[rows, pick][:, None]
        ok = (gain > 0) & (cost <= slack)
        if not ok.any():
            return pick
        score = np.where(ok, gain / np.maximum(cost, 1e-9), -np.inf)
        row, col = np.unravel_index(int(np.argmax(score)), score.shape)
        slack -= cost[row, col]
        pick[row] = col
