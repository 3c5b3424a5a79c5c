"""Per-slice intensity normalisation and padding, shared by the codec and training.

MR series differ wildly in range (12-bit data using 1200 of 4096 levels, 16-bit data using 5000
of 65536, signed data offset by 32768). The network sees ``(x - lo) / (hi - lo) - 0.5`` with
``lo``/``hi`` the slice's minimum and maximum, which the stream header stores as integers, so the
network works in one range for every series and no pixel is clipped by the normalisation.
Images are padded (edge replication) to a multiple of 64 on each side and cropped after decoding.
"""

from __future__ import annotations

import numpy as np
from fedcodec.shared.learned_lossy.model import DOWNSAMPLE


def slice_range(image: np.ndarray) -> tuple[int, int]:
    """``(lo, hi)`` with ``hi > lo`` (a flat slice gets ``hi = lo + 1``)."""
    lo, hi = int(image.min()), int(image.max())
    return lo, max(hi, lo + 1)


def normalise(image: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """float32 image in [-0.5, 0.5]."""
    return ((image.astype(np.float64) - lo) / (hi - lo) - 0.5).astype(np.float32)


def denormalise(x: np.ndarray, lo: int, hi: int, bits: int) -> np.ndarray:
    """Float network output back to integers in [0, 2**bits - 1] (int64)."""
    values = np.rint((x.astype(np.float64) + 0.5) * (hi - lo) + lo)
    return np.clip(values, 0, (1 << bits) - 1).astype(np.int64)


def padded_shape(rows: int, cols: int) -> tuple[int, int]:
    def up(n: int) -> int:
        return -(-n // DOWNSAMPLE) * DOWNSAMPLE

    return up(rows), up(cols)


def pad(image: np.ndarray) -> np.ndarray:
    rows, cols = padded_shape(*image.shape)
    return np.pad(image, ((0, rows - image.shape[0]), (0, cols - image.shape[1])), mode="edge")
