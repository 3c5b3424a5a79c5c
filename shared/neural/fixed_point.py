"""Integer arithmetic that gives the same answer on every machine.

The decoder must rebuild the entropy coder's probabilities bit for bit, so nothing that feeds them
may depend on libm (``log``, ``exp``) or on the order of a floating-point sum. Two tools:

* :func:`ilog2_q6` — log2 in 1/64 steps from the float exponent (``frexp`` is exact) and a
  constant 64-entry table, instead of ``np.log2``.
* :func:`exact_matmul` — a matrix product of integer-valued float64 arrays. While every partial
  sum stays below 2**53 each one is an exact integer, so BLAS may sum in any order, with any
  number of threads, with or without FMA, and still return the same integers. Callers keep
  operands bounded (``MAX_ACTIVATION``, ``MAX_WEIGHT``) so that bound holds with a wide margin.
"""

from __future__ import annotations

import numpy as np

Q = 6
"""Activations and features are fixed-point numbers with 6 fractional bits (value * 64)."""
ONE = 1 << Q

QW = 10
"""Weights carry 10 fractional bits; biases Q + QW."""

MAX_ACTIVATION = 1 << 14
MAX_WEIGHT = 1 << 17
MAX_FAN_IN = 1 << 10
# 2**14 * 2**17 * 2**10 = 2**41 < 2**53: every partial sum of exact_matmul is an exact integer.

_LOG2_FRACTION_Q6 = np.array(
    [1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 25, 26, 27, 28, 29,
     30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 43, 44, 45, 46, 47, 48, 49, 50, 50,
     51, 52, 53, 54, 55, 55, 56, 57, 58, 58, 59, 60, 61, 61, 62, 63, 64],
    dtype=np.int64,
)
"""round(64 * log2(1 + (i + 0.5) / 64)) for i in 0..63, written out so no libm is involved."""


def ilog2_q6(values: np.ndarray) -> np.ndarray:
    """``64 * log2(values)`` for positive integers (< 2**53), as int64, within about one unit.

    The exponent comes from ``frexp`` (bit extraction) and the fraction from the top 6 mantissa
    bits through a constant table; monotone non-decreasing in ``values``.
    """
    mantissa, exponent = np.frexp(np.asarray(values, dtype=np.float64))
    # mantissa in [0.5, 1): 128 * mantissa - 64 is exact and lies in [0, 64).
    index = (mantissa * 128.0 - 64.0).astype(np.int64)
    return (exponent.astype(np.int64) - 1) * ONE + _LOG2_FRACTION_Q6[index]


def exact_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` for integer-valued float64 arrays within the module's bounds (exact, see above)."""
    return x @ w
