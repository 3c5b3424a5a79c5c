"""Which earlier slices a slice is coded against: the previous slice and the previous volume.

A time series or diffusion series stores volume after volume, ``period`` slices each; the slice
at the same position one volume earlier is then far more alike than the neighbouring slice (thick
slices, same anatomy). The caller may pass ``period`` (slices per volume, from the DICOM
headers); otherwise :func:`detect_period` finds it from the pixels. The choice is written into
every stream as reference offsets, so the decoder never re-detects anything.
"""

from __future__ import annotations

import numpy as np

MAX_PERIOD = 1024


def _thumbnails(volume: np.ndarray) -> np.ndarray:
    """(slices, <=16, <=16) block means, float64 — cheap to compare across many lags."""
    s, h, w = volume.shape
    by, bx = max(1, h // 16), max(1, w // 16)
    hh, ww = (h // by) * by, (w // bx) * bx
    v = volume[:, :hh, :ww].astype(np.float64)
    return v.reshape(s, hh // by, by, ww // bx, bx).mean(axis=(2, 4))


def detect_period(volume: np.ndarray) -> int:
    """Slices per volume of a multi-volume series, or 1 when the previous slice is the best match.

    Thumbnails are compared at every lag up to half the series. A lag is the period when it is
    clearly closer than lag 1 (< 0.8x; among near-ties the smallest lag, never a multiple of
    the period), or else the smallest lag >= 3 that is a clear dip against its neighbouring lags
    (< 0.9x the nearer of lag-1 and lag+1). The dip catches diffusion series whose directions differ in
    contrast: the previous volume is then farther than the neighbouring slice, yet still the
    best second reference (Toshiba DTI: 0.904 vs 0.912 of JPEG XL with it).
    """
    s = volume.shape[0]
    if s < 4:
        return 1
    thumbs = _thumbnails(volume)
    thumbs -= thumbs.min()
    max_lag = min(s - 1, s // 2 + 1, MAX_PERIOD + 1)
    lags = np.arange(1, max_lag + 1)
    dist = np.array([np.abs(thumbs[p:] - thumbs[:-p]).mean() for p in lags]) + 1e-12
    candidates = lags[1 : s // 2]  # periods with at least two full volumes
    if candidates.size == 0:
        return 1
    closer = dist[candidates - 1]
    best = closer.min()
    if best < 0.8 * dist[0]:
        return int(candidates[np.flatnonzero(closer <= best * 1.05)[0]])
    scores = np.array([
        dist[p - 1] / min(dist[p - 2], dist[p] if p < max_lag else np.inf) for p in candidates
    ])
    scores[candidates < 3] = np.inf
    dips = np.flatnonzero(scores < 0.9)
    return int(candidates[dips[0]]) if dips.size else 1


def reference_offsets(index: int, period: int, interslice: bool = True) -> tuple[int, ...]:
    """Offsets (slices back) of the references of slice ``index``, most similar first.

    With a period: the same position in the previous volume, plus the previous slice when it is
    in the same volume. Without: the previous slice. Nothing for the first slice.
    """
    if not interslice or index == 0:
        return ()
    if period > 1 and index >= period:
        return (period, 1) if index % period else (period,)
    return (1,)
