"""Rate and quality control for bounded-error coding: which tau a slice or a series gets.

The bounded-error coder (``neural:tau=N``) guarantees every pixel within tau; a user asks for a
quality or a size instead. One target, four kinds:

``psnr=P``       every slice at or above P dB (peak ``2**bits - 1``): the largest tau per slice
                 whose *measured* PSNR (the encoder has the reconstruction) meets P;
``bpp=B``        the series at or below B bits per pixel: the smallest tau for the whole series;
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


def psnr_tau_cap(psnr: float, bits: int) -> int:
    """The largest tau a ``psnr`` target may pick: twice the tau whose error, if it were uniform
    on [-tau, tau] (MSE = tau (tau + 1) / 3), would just meet the target (measured PSNR runs
    1-3 dB above that estimate on MR), so a blank slice does not get an arbitrarily loose bound."""
    peak = (1 << bits) - 1
    mse = peak * peak / 10 ** (psnr / 10)
    uniform = int((math.sqrt(1 + 12 * mse) - 1) / 2)
    return max(0, min(2 * uniform + 1, peak - 1))


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
                   start: int) -> tuple[int, bytes, np.ndarray]:
    """The largest tau (<= :func:`psnr_tau_cap`) whose coded slice meets ``psnr``: (tau, stream,
    reconstruction). Typically 2 trials when ``start`` is the previous slice's tau."""
    tried: dict[int, tuple[bytes, np.ndarray]] = {}

    def passes(tau: int) -> bool:
        if tau not in tried:
            tried[tau] = trial(tau)
        return tau == 0 or metrics.psnr(original, tried[tau][1], bits) >= psnr

    tau = _gallop(passes, start, psnr_tau_cap(psnr, bits))
    if tau not in tried:  # only tau 0 can pass untried
        tried[tau] = trial(tau)
    return (tau, *tried[tau])


def series_for_bpp(sample_bpp: Callable[[int], float], full_bpp: Callable[[int], float],
                   limit: float, bits: int, start: int = 1) -> int:
    """The smallest tau whose whole-series bpp is at or below ``limit`` (found by the full
    coding; the caller keeps the streams of each tau it coded).

    ``sample_bpp(tau)`` estimates from a subsample (cheap) and picks a candidate; ``full_bpp(tau)``
    codes the series: the candidate moves up until the limit holds, then down while a smaller
    tau still holds.
    """
    top = (1 << bits) - 2
    if sample_bpp(0) <= limit:
        tau = 0
    else:
        tau = min(_gallop(lambda t: t == 0 or sample_bpp(t) > limit, start, top) + 1, top)
    while full_bpp(tau) > limit:
        if tau >= top:
            raise FedcodecError(f"cannot reach {limit:.4g} bpp even with tau {tau}")
        tau = min(top, max(tau + 1, tau * 9 // 8))
    while tau > 0 and full_bpp(tau - 1) <= limit:
        tau -= 1
    return tau
