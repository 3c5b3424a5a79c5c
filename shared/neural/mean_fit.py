"""A per-slice linear correction of the network's mean, fitted by the encoder (stream 0xA8).

Why: the network is one fixed predictor for every scanner. On images that were interpolated
by the scanner (a 1024² or 484² matrix reconstructed from far fewer samples) the pixels follow
an interpolation kernel the network never learned, and JPEG XL, which fits its predictor to each
image, wins by 5-6 %. Here the encoder fits, for each pyramid group of a large lossless slice,
least-squares weights that predict the network's error ``8 x - pred`` from the group's known
neighbours (``8 n_j - pred``, the same 12 or 16 neighbours the network sees), and keeps them
where they pay for their bytes. The decoder applies them with the same integer arithmetic::

    pred' = clip(pred + ((sum_j w_j (8 n_j - pred)) >> WEIGHT_SHIFT), 0, maxval << 3)

Lossless, every reconstruction is the original, so one recorded walk gives the encoder
everything the fit needs and the corrected prediction changes no context. Near-lossless, the
reconstructions follow the prediction: the weights are fitted on a first walk and the slice is
walked again with them (only when some group kept its weights). The fit is float and
encoder-side only; what the stream carries are the integer weights.
"""

from __future__ import annotations

import numpy as np

from fedcodec.shared.neural.geometry import GROUPS, GroupSpec, neighbour_indices

WEIGHT_SHIFT = 8
"""Weights are integers in units of 1/256."""
MAX_WEIGHT = 1 << 12
"""|w| < 16: a fit that needs more is ill-conditioned and is not used."""
MIN_PIXELS = 1 << 12
"""Groups smaller than this are never fitted (a 128² slice's finest groups have 4096 pixels):
on 64² groups the weights' ~20 bytes are a sizeable part of the group's code. Measured with
the leave-one-group-out models: -2.0 % and -5.1 % on the 1024² and 484² PyPI MR (the slices
where JPEG XL wins), -1.9 % GE, -0.65 % de-identified T1, -0.24 % Siemens, 0 on
field maps and Philips DWI (nothing kept)."""


def group_index(level: int, group: GroupSpec) -> int:
    """A group's number in the stream: 3 per pyramid level, finest level first."""
    return 3 * level + GROUPS.index(group)


def differences(pred_q3: np.ndarray, grid: np.ndarray, group: GroupSpec, stride: int = 1
                ) -> np.ndarray:
    """(neighbours, n) int64: 8 * neighbour - prediction, the inputs of the correction (of
    every ``stride``-th pixel)."""
    indices = neighbour_indices(grid.shape, group)[:, ::stride]
    return (grid.reshape(-1)[indices].astype(np.int64) << 3) - pred_q3[None, ::stride]


def corrected(pred_q3: np.ndarray, grid: np.ndarray, group: GroupSpec,
              weights: tuple[int, ...], maxval: int) -> np.ndarray:
    """The corrected prediction (1/8 grey levels); integer arithmetic, encoder and decoder."""
    w = np.asarray(weights, dtype=np.int64)
    correction = (w @ differences(pred_q3, grid, group)) >> WEIGHT_SHIFT
    return np.clip(pred_q3 + correction, 0, maxval << 3)


FIT_SAMPLE = 1 << 14
"""Pixels (every n-th of the group) the weights are fitted on: 16 unknowns need far fewer."""
MIN_EXPLAINED = 0.01
"""A fit that removes less than this share of the squared error is not tried: a 1 % smaller
error saves ~0.007 bits a pixel, about the weights' bytes on the smallest groups fitted."""


def fit(pred_q3: np.ndarray, grid: np.ndarray, group: GroupSpec, x: np.ndarray
        ) -> tuple[int, ...] | None:
    """Least-squares weights for one group (encoder only); None when the fit is unusable or
    removes less than ``MIN_EXPLAINED`` of the squared error.

    The normal equations (a 12x12 or 16x16 system): ``lstsq``'s SVD cost 3 ms a group and
    gives the same weights after rounding to 1/256. Plain least squares: dividing each equation
    by the pixel's predicted scale (1/sigma or 1/sqrt(sigma)) was tried on the 1024² and 484²
    PyPI MR and changed the result by < 0.5 % either way."""
    stride = max(1, x.size // FIT_SAMPLE)
    d = differences(pred_q3, grid, group, stride).astype(np.float64)
    y = ((x[::stride].astype(np.int64) << 3) - pred_q3[::stride]).astype(np.float64)
    gram = d @ d.T
    gram[np.diag_indices_from(gram)] += 1e-6 * max(float(np.trace(gram)), 1.0)
    dy = d @ y
    try:
        w = np.linalg.solve(gram, dy)
    except np.linalg.LinAlgError:
        return None
    if float(w @ dy) < MIN_EXPLAINED * float(y @ y):  # the squared error the fit removes
        return None
    q = np.rint(w * (1 << WEIGHT_SHIFT))
    if not np.isfinite(q).all() or np.abs(q).max() >= MAX_WEIGHT or not q.any():
        return None
    return tuple(int(v) for v in q)
