"""Reconstruction inside the quantisation bin, towards the prediction (bounded-error coding).

With step ``2 tau + 1`` the coder reconstructs index ``t`` at the bin centre ``base + t * step``.
The model's residual distribution falls off away from the prediction, so inside a bin with
``t != 0`` the pixels sit closer to the prediction on average: reconstructing at
``base + t * step - sign(t) * shift`` lowers the error energy at no rate (the decoder knows the
scale bin ``k`` and ``t``). ``shift = round(FRACTION_Q8[k, min(|t|, 3)] * step / 256)``, capped
at tau, with fractions fitted once on the training data (``experiments/bounded_reconstruction.py
--fit``: the mean in-bin offset per scale bin and |index|, in units of the step) and stored here as
integers, so encoder and decoder compute the same shift on every machine.

The bound still holds because the encoder checks every pixel: shifted points are closer together
than ``step`` (the fractions never decrease with |t|, so consecutive points are at most ``step``
apart), hence every value is within tau of some point; a pixel on the far side of its bin takes the
next index outwards (the only other admissible one; the index towards zero is never within tau).
"""

from __future__ import annotations

import numpy as np

from fedcodec.shared.neural.tables import N_BINS

T_BUCKETS = 4
"""|t| = 0 (never shifted), 1, 2, >= 3."""

# Fitted by experiments/bounded_reconstruction.py --fit (../shared/data/dicom, the training data
# of the shipped weights). Rows: groups of scale bins (K_GROUP each); columns: |t| = 0, 1, 2, >= 3.
K_GROUP = 6
FRACTION_Q8_GROUPS: tuple[tuple[int, int, int, int], ...] = (
    (0, 94, 0, 0), (0, 80, 0, 0), (0, 70, 33, 18), (0, 51, 40, 19), (0, 24, 27, 23),
    (0, 8, 11, 14), (0, 2, 4, 6), (0, 0, 1, 3), (0, 0, 4, 0), (0, 0, 1, 1),
)
"""0 where a bucket had under 200 pixels; made non-decreasing in |t| by :func:`_table`."""


def _table() -> np.ndarray:
    table = np.zeros((N_BINS, T_BUCKETS), dtype=np.int64)
    for g, row in enumerate(FRACTION_Q8_GROUPS):
        table[g * K_GROUP:(g + 1) * K_GROUP] = row
    if FRACTION_Q8_GROUPS:
        table[len(FRACTION_Q8_GROUPS) * K_GROUP:] = FRACTION_Q8_GROUPS[-1]
    table[:, 0] = 0
    return np.maximum.accumulate(np.clip(table, 0, 128), axis=1)  # never decreasing in |t|


FRACTION_Q8 = _table()


def shift(k: np.ndarray, t: np.ndarray, tau: int) -> np.ndarray:
    """Grey levels to move the reconstruction of index ``t`` (scale bin ``k``) towards the
    prediction: 0 for t = 0, never above tau, never decreasing in |t| (int64)."""
    step = 2 * tau + 1
    fraction = FRACTION_Q8[k, np.minimum(np.abs(t), T_BUCKETS - 1)]
    return np.minimum((fraction * step + 128) >> 8, tau)


def reconstruct(base: np.ndarray, t: np.ndarray, k: np.ndarray, tau: int,
                maxval: int) -> np.ndarray:
    """The reconstruction of index ``t`` with the centroid shift, clipped to 0..maxval."""
    step = 2 * tau + 1
    return np.clip(base + t * step - np.sign(t) * shift(k, t, tau), 0, maxval)


def quantise(x: np.ndarray, base: np.ndarray, k: np.ndarray, tau: int,
             maxval: int) -> tuple[np.ndarray, np.ndarray]:
    """Encoder: the index of every pixel whose shifted reconstruction is within tau, and that
    reconstruction. Starts from the centre quantiser's index; a pixel on the far side of its bin
    takes the next index outwards."""
    step = 2 * tau + 1
    r = x - base
    t = np.sign(r) * ((np.abs(r) + tau) // step)
    values = reconstruct(base, t, k, tau, maxval)
    far = np.abs(x - values) > tau
    if far.any():
        t[far] += np.sign(x[far] - values[far])
        values[far] = reconstruct(base[far], t[far], k[far], tau, maxval)
    return t, values
