"""Which period a multi-volume series is coded with: the candidates, tried on a few slices.

A slice of volume *v* is coded against the same position in volume *v-1* (``period`` slices
back) and the previous slice. Two sources propose the period: the DICOM headers (slice positions
per volume, exact when the series is complete volumes) and the pixels (:func:`detect_period`).
Neither is always the better reference: a field-map series stores magnitude then phase as two
"volumes" at the same positions (the header period points a magnitude slice at a phase slice),
and a Philips multi-shell DWI repeats its contrast every four volumes (the pixels find 128 where
the headers say 32). So when the proposals disagree, the encoder codes a few sample slices with
each candidate and keeps the cheapest; the choice is written into every stream as its reference
offsets, so the decoder follows it without knowing how it was made.

The samples are coded against the original slices (for a bounded-error series the real
references are reconstructions within tau): a cost estimate for the choice, not the stream.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fedcodec.shared.neural.volume_context import detect_period, reference_offsets

SAMPLE_SLICES = 3
"""Slices coded per candidate. On the 17 shared series where headers and pixels disagree, the
choice costs 0.9976 of the detected period's bytes against 0.9974 for the best candidate per
series (``experiments/neural_geometry_period.py``, lossless, first 160 slices)."""


def period_candidates(volume: np.ndarray, header_period: int | None) -> list[int]:
    """Distinct periods worth trying, the pixel-detected one first; 1 = the previous slice only.

    When the headers and the pixels agree there is nothing to try: on the shared data the
    previous slice alone never beat an agreed period over a whole series (0.3 % to 9x larger),
    and three sample slices picked it wrongly twice in 25 such series."""
    slices = volume.shape[0]
    detected = detect_period(volume)
    if header_period == detected:
        return [detected]  # headers and pixels agree: measured, the trial only ever lost there
    out = [detected]
    if header_period is not None and 1 < header_period < slices:
        out.append(header_period)
    if len(out) > 1 or detected > 1:
        out.append(1)
    return list(dict.fromkeys(out))


def sample_indices(slices: int, candidates: list[int]) -> list[int]:
    """Slices that have every candidate's references: evenly spread after the longest period."""
    first = max(candidates)
    if first >= slices:
        return []
    return sorted({int(round(i)) for i in np.linspace(first, slices - 1, SAMPLE_SLICES)})


def choose_period(volume: np.ndarray, header_period: int | None,
                  coded_bytes: Callable[[np.ndarray, list[np.ndarray], tuple[int, ...]], int]
                  ) -> tuple[int, dict[int, int]]:
    """The cheapest candidate period and every candidate's sample cost in bytes.

    ``coded_bytes(image, refs, offsets)`` is the stream length of one slice coded against
    ``refs``. A single candidate is returned untried (empty costs); so is the detected period
    when no slice has every candidate's references (a series shorter than the longest period,
    which then cannot use it anyway).
    """
    candidates = period_candidates(volume, header_period)
    usable = [p for p in candidates if p < volume.shape[0]]
    if len(usable) < 2:
        return candidates[0], {}
    samples = sample_indices(volume.shape[0], usable)
    costs = {}
    for period in usable:
        total = 0
        for i in samples:
            offsets = reference_offsets(i, period)
            total += coded_bytes(volume[i], [volume[i - o].astype(np.int32) for o in offsets],
                                 offsets)
        costs[period] = total
    return min(usable, key=lambda p: (costs[p], usable.index(p))), costs
