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

from functools import lru_cache

import numpy as np

from fedcodec.shared.neural.geometry import GROUPS, GroupSpec, tap_indices

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


WIDE_RADIUS = 5
"""Taps reach this far (Chebyshev distance, in the level grid) beyond the network's own."""


@lru_cache(maxsize=None)
def taps(group: GroupSpec) -> tuple[tuple[int, int], ...]:
    """The (dy, dx) a correction of ``group`` may weigh, in stream order: the network's own
    neighbours (``group.offsets``, the 12 or 16 every stream before wide corrections used),
    then every other pixel known when the group is coded (same phase as one of those) within
    ``WIDE_RADIUS``, nearest first. A correction with k weights uses the first k.

    Why wider: scanners reconstruct many matrices by zero-filling k-space, a sinc
    interpolation no 12-16-pixel neighbourhood captures. Least squares on the raw pixels of
    the PyPI 1024² and 484² MR (``experiments/mean_fit_taps.py``) leaves 0.71 and 0.65 of the
    squared error of the network's neighbourhood on groups C, and 0.63 and 0.45 on D, with the
    taps within radius 3 (0.61 / 0.50 and 0.53 / 0.42 within radius 5)."""
    known = {(dy % 2, dx % 2) for dy, dx in group.offsets}
    own = set(group.offsets)
    extra = [(dy, dx) for dy in range(-WIDE_RADIUS, WIDE_RADIUS + 1)
             for dx in range(-WIDE_RADIUS, WIDE_RADIUS + 1)
             if (dy % 2, dx % 2) in known and (dy, dx) not in own]
    extra.sort(key=lambda o: (max(abs(o[0]), abs(o[1])), o[0] ** 2 + o[1] ** 2, o))
    return tuple(group.offsets) + tuple(extra)


WIDE_MAX_TAU = 4
"""Wide corrections are tried up to this bound: the fit and its estimated saving come from the
encoder's first walk, whose reconstructions are within tau of what the decoder will see; at
large bounds they did not hold (16-bit field maps, and GE slices at tau 717, where wide weights
cost more bytes than they saved)."""


def tap_counts(group: GroupSpec, tau: int = 0) -> tuple[int, ...]:
    """The numbers of weights the encoder tries at bound ``tau``: the network's neighbourhood,
    then (``tau <= WIDE_MAX_TAU``) every tap within Chebyshev radius 3, 4 and 5 (each a prefix
    of :func:`taps`)."""
    offsets = taps(group)
    counts = {len(group.offsets)}
    for radius in range(3, WIDE_RADIUS + 1 if tau <= WIDE_MAX_TAU else 3):
        counts.add(sum(max(abs(dy), abs(dx)) <= radius for dy, dx in offsets))
    return tuple(sorted(counts))


def differences(pred_q3: np.ndarray, grid: np.ndarray, group: GroupSpec, count: int,
                select: np.ndarray | None = None) -> np.ndarray:
    """(count, n) int64: 8 * tap - prediction for the first ``count`` taps, the inputs of the
    correction (of the group's pixels ``select``, whose predictions ``pred_q3`` are)."""
    flat = grid.reshape(-1)
    return np.stack([(flat[index].astype(np.int64) << 3) - pred_q3 for index in
                     tap_indices(grid.shape, group, taps(group)[:count], select)])


def corrected(pred_q3: np.ndarray, grid: np.ndarray, group: GroupSpec,
              weights: tuple[int, ...], maxval: int) -> np.ndarray:
    """The corrected prediction (1/8 grey levels) of every pixel of the group; integer
    arithmetic, encoder and decoder. Summed one tap at a time (exact in int64: |w| < 2**12,
    |8 n - pred| < 2**20, < 100 taps), so a wide correction never holds a (taps, pixels)
    array."""
    flat = grid.reshape(-1)
    total = np.zeros(pred_q3.shape, dtype=np.int64)
    for w, index in zip(weights, tap_indices(grid.shape, group, taps(group)[:len(weights)])):
        if w:
            total += w * ((flat[index].astype(np.int64) << 3) - pred_q3)
    return np.clip(pred_q3 + (total >> WEIGHT_SHIFT), 0, maxval << 3)


def applied(pred_q3: np.ndarray, diffs: np.ndarray, weights: tuple[int, ...], maxval: int
            ) -> np.ndarray:
    """:func:`corrected` of the pixels whose :func:`differences` are ``diffs`` (the same
    integers: the encoder scores several corrections on one sample)."""
    w = np.asarray(weights, dtype=np.int64)
    return np.clip(pred_q3 + ((w @ diffs[:w.size]) >> WEIGHT_SHIFT), 0, maxval << 3)


FIT_SAMPLE = 1 << 14
"""Pixels (every n-th of the group) the weights are fitted on: 16 unknowns need far fewer."""
MIN_EXPLAINED = 0.01
"""A fit that removes less than this share of the squared error is not tried: a 1 % smaller
error saves ~0.007 bits a pixel, about the weights' bytes on the smallest groups fitted."""


def fit(pred_q3: np.ndarray, grid: np.ndarray, group: GroupSpec, x: np.ndarray,
        counts: tuple[int, ...] | None = None) -> dict[int, tuple[int, ...] | None]:
    """Least-squares weights for one group with each number of taps in ``counts`` (default: the
    network's neighbourhood), encoder only: {count: weights, or None when the fit is unusable
    or removes less than ``MIN_EXPLAINED`` of the squared error}. The taps are prefixes of one
    list, so one set of normal equations serves every count (its leading blocks).

    The normal equations: ``lstsq``'s SVD cost 3 ms a 16-tap group and gives the same weights
    after rounding to 1/256. Plain least squares: dividing each equation by the pixel's
    predicted scale (1/sigma or 1/sqrt(sigma)) was tried on the 1024² and 484² PyPI MR and
    changed the result by < 0.5 % either way."""
    counts = (len(group.offsets),) if counts is None else counts
    stride = max(1, x.size // FIT_SAMPLE)
    select = np.arange(0, x.size, stride)
    d = differences(pred_q3[select], grid, group, max(counts), select).astype(np.float64)
    y = ((x[select].astype(np.int64) << 3) - pred_q3[select]).astype(np.float64)
    gram_all, dy_all, energy = d @ d.T, d @ y, float(y @ y)
    out: dict[int, tuple[int, ...] | None] = {}
    for count in counts:
        gram = gram_all[:count, :count].copy()
        gram[np.diag_indices_from(gram)] += 1e-6 * max(float(np.trace(gram)), 1.0)
        dy = dy_all[:count]
        try:
            w = np.linalg.solve(gram, dy)
        except np.linalg.LinAlgError:
            out[count] = None
            continue
        q = np.rint(w * (1 << WEIGHT_SHIFT))
        usable = (float(w @ dy) >= MIN_EXPLAINED * energy  # the squared error the fit removes
                  and np.isfinite(q).all() and np.abs(q).max() < MAX_WEIGHT and q.any())
        out[count] = tuple(int(v) for v in q) if usable else None
    return out
