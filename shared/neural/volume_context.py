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

    Compares thumbnails at every lag up to half the series; a lag wins when it is clearly closer
    than lag 1 (< 0.8x), and among near-ties (within 5%) the smallest lag wins so that a multiple
    of the period is never chosen over the period itself.
    """
    s = volume.shape[0]
    if s < 4:
        return 1
    thumbs = _thumbnails(volume)
    scale = np.abs(thumbs).mean() + 1e-9
    lags = np.arange(1, min(s // 2, MAX_PERIOD) + 1)
    dist = np.array([np.abs(thumbs[p:] - thumbs[:-p]).mean() / scale for p in lags])
    best = dist[1:].min() if lags.size > 1 else np.inf
    if not best < 0.8 * dist[0]:
        return 1
    return int(lags[1:][np.flatnonzero(dist[1:] <= best * 1.05)[0]])


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
