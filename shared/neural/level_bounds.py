"""Level bounds: a finer bound on the coarse pyramid levels than on level 0 (stream 0xAA).

The polyphase pyramid codes a quarter of the pixels (levels 1 and up) before the other three
quarters (level 0), and every level-0 prediction is read from them. With one bound everywhere
the coarse pixels' errors reach every finer prediction, so at low rates (most level-0 symbols
zero, the reconstruction an interpolation of the coarse levels) a bit spent on a coarse pixel
buys more PSNR than one spent at level 0. The rule here sets level ``l``'s bound to
``floor(tau * ratio**l)``: tau, the largest, stays level 0's and the bound the slice
guarantees (its stream header records it; every pixel is within it).

Measured with ``experiments/level_bounds.py`` (``neural_v1`` plus its near-lossless tables
fitted on ``dicom/`` only, the learned coder alone, sources the model never saw), BD-rate
against one bound, 45-65 dB, ratio 0.7: PyPI MR -28.2 %, field maps -50.4 %, de-identified
research slices -46.9 %, enhanced multi-frame -5.0 %, Philips DWI -1.7 %. The rule is for
quality and rate targets (``neural:mode=lossy,psnr=`` / ``bpp=`` / ``ratio=``); a
``max_error=`` target asks for the fewest bytes at a bound, which one bound everywhere gives.
"""

from __future__ import annotations

import math

from fedcodec.shared.neural.geometry import pyramid_shapes

DEFAULT_RATIO = 0.7
"""The ratio ``neural:mode=lossy`` uses for quality and rate targets: of 0.85, 0.7 and 0.55
the best on three of five unseen sources and within 10 BD-rate points of the best on the other
two (``experiments/level_bounds.py``; 0.55 wins on field maps and loses on Philips DWI)."""


def level_taus(tau: int, shape: tuple[int, int], ratio: float) -> tuple[int, ...]:
    """The bounds of pyramid levels 1.. of a slice of ``shape`` coded at ``tau`` (level 0),
    trailing repeats dropped (a level past the end takes the last); () when the rule gives
    every level ``tau`` (ratio 1, tau 0, or a slice without coarse levels)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"level-bound ratio must be in (0, 1], not {ratio!r}")
    levels = len(pyramid_shapes(*shape)) - 2  # levels 1..top-1 (the top pixel is lossless)
    if tau <= 0 or ratio == 1.0 or levels < 1:
        return ()
    out = [math.floor(tau * ratio ** level + 1e-9) for level in range(1, levels + 1)]
    while len(out) > 1 and out[-1] == out[-2]:
        out.pop()
    return () if out == [tau] else tuple(out)
