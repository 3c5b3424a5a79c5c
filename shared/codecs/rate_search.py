"""Hit a byte budget with an encoder that only offers a quality knob.

imagecodecs exposes OpenJPEG's lossy mode as a target PSNR and OpenJPH's as a quantisation step;
neither takes a compression ratio. To offer ``ratio=R`` anyway we bisect the knob for the
best-quality stream whose size is within the budget. Encoders are deterministic, so the search
(and hence the output) is too.
"""

from __future__ import annotations

from collections.abc import Callable

SEARCH_STEPS = 14
"""Bisection steps over the normalised knob in [0, 1]; 14 steps resolve it to ~6e-5."""


def encode_within_budget(
    encode_at: Callable[[float], bytes], budget: int, steps: int = SEARCH_STEPS
) -> bytes:
    """Return the stream for the largest knob ``t`` in [0, 1] whose size is <= ``budget``.

    ``encode_at(t)`` must produce larger streams for larger ``t`` (roughly: a non-monotone
    step only costs optimality, the result still respects the budget). If even ``t = 0`` is
    over budget (tiny images are header-bound) the ``t = 0`` stream is returned: the smallest
    the encoder can make.
    """
    smallest = encode_at(0.0)
    if len(smallest) > budget:
        return smallest
    best = smallest
    largest = encode_at(1.0)
    if len(largest) <= budget:
        return largest
    low, high = 0.0, 1.0
    for _ in range(steps):
        middle = (low + high) / 2
        stream = encode_at(middle)
        if len(stream) <= budget:
            best, low = stream, middle
        else:
            high = middle
    return best
