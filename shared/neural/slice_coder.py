"""Code one slice group by group; the encoder and the decoder walk the very same steps.

Both sides run :func:`_walk`: the 1x1 top of the pyramid, then for each level from coarse to
fine the groups B, C, D. For every group the context is computed from what is already
reconstructed, the integer network gives each pixel a mean and a scale bin, and the residuals go
through :class:`_Encoder` / :class:`_Decoder`, which share one interface (``code``). The encoder
only records symbols while walking and pushes them onto the rANS stack in reverse at the end (a
stack codec decodes last-in first-out), so encoding and decoding cannot drift apart.

Near-lossless: the residual ``r = x - round(mean)`` is quantised with step ``2*tau + 1``
(``q = sign(r) * ((|r| + tau) // step)``) and the reconstruction ``round(mean) + q * step`` (clipped
to the valid range) is what later contexts see (closed loop), so every pixel is within tau.

Per-pixel bound (region-of-interest coding, :mod:`fedcodec.shared.learned_lossy.roi`): an optional
``tau_map`` (int32, the image's shape, known to both sides) gives every pixel its own tau, and
``-1`` marks a pixel that is not coded at all: it takes the value of the first reference image
(the lossy base layer) and costs no bits. Coded pixels quantise with their own step
``2*tau + 1``; scale bin and phase follow the same rule as a uniform tau, per pixel. Integer
arithmetic only, so the decoder rebuilds the same values. Without a map nothing changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import constriction
import numpy as np

from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural import bin_centroid, coarse_window, mean_fit, truncation
from fedcodec.shared.neural.chains import others_runnable, usable_cores
from fedcodec.shared.neural.features import LevelNoise, group_context, level_noise
from fedcodec.shared.neural.fixed_point import ilog2_q6
from fedcodec.shared.neural.geometry import (
    GROUPS,
    NEAREST,
    GroupSpec,
    group_positions,
    neighbour_indices,
    pyramid_shapes,
)
from fedcodec.shared.neural.tables import (
    CENTRE_PHASE,
    ESCAPE,
    HALF_RANGE,
    N_BINS,
    SHIFTS,
    scale_bin,
    table_key,
)
from fedcodec.shared.neural.weights import NeuralWeights

_controller = None


def blas_threads():
    """Limit BLAS to ``FEDCODEC_NEURAL_BLAS_THREADS`` threads (default 1) while coding.

    The products are small (pixels x ~50 x 32): with two threads on busy cores OpenBLAS spends
    more time synchronising than computing (measured 10x slower). Results do not depend on it:
    the products are exact (see ``fixed_point``). Without threadpoolctl this is a no-op.
    """
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl ships with the pinned set
            return contextlib.nullcontext()
        _controller = ThreadpoolController()  # scanning the loaded libraries costs ~0.2 ms
    return _controller.limit(limits=int(os.environ.get("FEDCODEC_NEURAL_BLAS_THREADS", "1")),
                             user_api="blas")


CHUNK = 1 << 15
"""Pixels per network call: bounds memory on large images without changing any result."""
PARALLEL_MIN = 1 << 13
"""Groups at least this large are split across ``FEDCODEC_NEURAL_THREADS`` threads (default 2)."""

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def _threads() -> int:
    """Worker threads for large groups: ``FEDCODEC_NEURAL_THREADS``, else 2 on an idle machine
    and 1 when other work already fills every core the process may use (a second thread then
    only adds synchronisation: measured slower at load ~15 on 2 cores; ``others_runnable``
    does not count this process's own earlier threads, which the 1-minute load average alone
    would). Results never depend on it (see :func:`_run_in_parts`)."""
    if "FEDCODEC_NEURAL_THREADS" in os.environ:
        return max(1, int(os.environ["FEDCODEC_NEURAL_THREADS"]))
    cores = usable_cores()
    return 1 if cores < 2 or others_runnable() >= cores else 2


def _run_in_parts(work, n: int) -> None:
    """Call ``work(slice)`` over 0..n in chunks, on worker threads when the group is large.

    Each pixel's context and prediction depend only on already reconstructed pixels, so how the
    group is cut (and in which order the parts run) cannot change any result; numpy and BLAS
    release the GIL, so two threads use both cores.
    """
    threads = _threads()
    parts = max(-(-n // CHUNK), threads if n >= PARALLEL_MIN else 1)
    bounds = [n * i // parts for i in range(parts + 1)]
    pieces = [slice(a, b) for a, b in itertools.pairwise(bounds)]
    if threads == 1 or len(pieces) == 1:
        for piece in pieces:
            work(piece)
        return
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid() or _pool._max_workers != threads:
        # a pool inherited through fork has no threads left: make a new one in the child
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="neural-codec")
        _pool_pid = os.getpid()
    for future in [_pool.submit(work, piece) for piece in pieces]:
        future.result()

_model = constriction.stream.model


@dataclass(frozen=True)
class SliceParams:
    bits: int
    tau: int
    scale_offset: int = 0
    """Encode-time adaptation: every pixel's scale bin moves by this many bins (1/6 octave
    each), chosen by the encoder for the slice and written in the stream
    (see :func:`.adaptive_encoder.best_scale_offset`)."""
    centroid: bool = False
    """Bounded error: reconstruct inside the bin towards the prediction (:mod:`.bin_centroid`)."""
    centred_cells: bool = False
    """Refinement layers: cells centred on the prediction, else a grid from the window's start
    (:mod:`.coarse_window`; the encoder picks per slice)."""
    bounds: tuple[int, int] | None = None
    """Every pixel lies in [lo, hi] (the slice's minimum and maximum, in the stream), so tables
    reaching past them are truncated (:mod:`.truncation`)."""
    corrections: tuple[tuple[int, tuple[int, ...]], ...] = ()
    """(group number, weights) of the groups whose predicted mean is corrected
    (:mod:`.mean_fit`), chosen by the encoder."""
    group_offsets: tuple[tuple[int, int], ...] = ()
    """(group number, extra bins) of the groups whose scale bins move by more than
    ``scale_offset``, chosen by the encoder where a group's best offset differs."""
    cell_tables: bool = False
    """Cells coded with the model's near-lossless tables for tau
    (:meth:`.EntropyModels.for_bound`), chosen by the encoder where they code smaller."""
    level_taus: tuple[int, ...] = ()
    """Level bounds (0xAA): the bounds of pyramid levels 1, 2, ... (a level past the end takes
    the last), each <= ``tau``, which stays level 0's (three quarters of the pixels) and the
    bound the slice guarantees. Coarse pixels are every finer pixel's context, so a finer bound
    there buys more PSNR per bit than at level 0 (:mod:`.level_bounds`)."""

    def offset_of(self, level: int, group: GroupSpec) -> int:
        """The scale offset of one pyramid group: the slice's plus the group's own."""
        if not self.group_offsets:
            return self.scale_offset
        own = dict(self.group_offsets).get(mean_fit.group_index(level, group), 0)
        return self.scale_offset + own

    def at_level(self, level: int) -> SliceParams:
        """The params pyramid ``level`` is coded with: ``tau`` replaced by its level bound (a
        level coded losslessly has neither centroid reconstruction nor near-lossless tables)."""
        if not self.level_taus or level == 0:
            return self
        tau = self.level_taus[min(level, len(self.level_taus)) - 1]
        return dataclasses.replace(self, tau=tau, centroid=self.centroid and tau > 0,
                                   cell_tables=self.cell_tables and tau > 0, level_taus=())

    def models_at(self, models: EntropyModels, level: int) -> EntropyModels:
        """The tables pyramid ``level`` is coded with: with level bounds and near-lossless
        tables, the set of that level's bound (``models`` is the set of ``tau``)."""
        if not self.level_taus or not self.cell_tables or level == 0:
            return models
        return models.for_bound(self.at_level(level).tau)

    @property
    def maxval(self) -> int:
        return (1 << self.bits) - 1

    @property
    def step(self) -> int:
        return 2 * self.tau + 1


class EntropyModels:
    """constriction models built once per weights: one Categorical per table, uniform models."""

    def __init__(self, weights: NeuralWeights, tau: int = 0) -> None:
        counts = weights.counts_for(tau)
        self._weights = weights
        self._at_bound: dict[int, EntropyModels] = {weights.table_bound(tau): self}
        self._counts = counts.astype(np.float64)
        self._int_counts = counts.astype(np.int64)
        self._cumulative: np.ndarray | None = None
        self._cache: dict[int, object] = {}
        self._log_p: np.ndarray | None = None
        self._window_tables: tuple[np.ndarray, np.ndarray] | None = None
        self.uniform_family = _model.Uniform()
        self.categorical_family = _model.Categorical(perfect=False)
        """One categorical per symbol (probabilities given per symbol): refinement bins."""

    def for_bound(self, tau: int) -> EntropyModels:
        """The models a stream at ``tau`` codes with (its model's near-lossless tables,
        :meth:`NeuralWeights.counts_for`), built once; ``self`` when they are these."""
        bound = self._weights.table_bound(tau)
        if bound not in self._at_bound:
            models = EntropyModels(self._weights, tau)
            models._at_bound = self._at_bound  # one family of siblings
            self._at_bound[bound] = models
        return self._at_bound[bound]

    def window_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(integer counts, their cumulative sums) for :mod:`.coarse_window` bin masses."""
        if self._window_tables is None:
            counts = self._counts.astype(np.int64)
            self._window_tables = counts, coarse_window.cumulative_counts(counts)
        return self._window_tables

    def log_probabilities(self) -> np.ndarray:
        """log2 of every table's probabilities (encoder-side cost estimates only)."""
        if self._log_p is None:
            self._log_p = np.log2(self._counts / self._counts.sum(axis=1, keepdims=True))
        return self._log_p

    def table(self, key: int):
        """The Categorical of a table index, or of a truncated table (key >= TRUNCATED)."""
        model = self._cache.get(key)
        if model is None:
            if key >= truncation.TRUNCATED:
                if len(self._cache) > MAX_CACHED_TABLES:  # truncated tables vary per study
                    self._cache = {k: m for k, m in self._cache.items()
                                   if k < truncation.TRUNCATED}
                row = truncation.probabilities(self._int_counts, key)
            else:
                row = self._counts[key]
            model = _model.Categorical(row, perfect=False)
            self._cache[key] = model
        return model

    def truncated_keys(self, key: np.ndarray, shift: np.ndarray,
                       room: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
        """Sort keys with truncated tables where the range cuts enough (:mod:`.truncation`)."""
        return truncation.sort_keys(self._int_counts, self.cumulative(), key, shift, *room)

    def truncation_gain(self, key: np.ndarray, shift: np.ndarray,
                        room: tuple[np.ndarray, np.ndarray]) -> float:
        return truncation.gain_bits(self._int_counts, self.cumulative(), key, shift, *room)

    def cumulative(self) -> np.ndarray:
        if self._cumulative is None:
            self._cumulative = truncation.cumulative(self._int_counts)
        return self._cumulative

    def uniform(self, size: int):
        key = -size
        model = self._cache.get(key)
        if model is None:
            model = _model.Uniform(size)
            self._cache[key] = model
        return model


MAX_CACHED_TABLES = 1 << 16
"""Cached Categoricals beyond which the truncated ones are dropped (memory stays bounded)."""


class _Encoder:
    """Records (symbols, model, params) in decoding order; :meth:`finish` writes them reversed.

    ``groups`` (filled by :class:`_Recorder`) keeps each group's (scale bin, phase, residual
    symbols), so the slice's residuals can be coded with a scale offset chosen after the walk
    (the offset changes no prediction or reconstruction, only the tables)."""

    def __init__(self) -> None:
        self.ops: list[tuple] = []
        self.groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def code(self, symbols, count, model, params=None) -> np.ndarray:
        symbols = np.ascontiguousarray(symbols, dtype=np.int32)
        if symbols.size:
            self.ops.append((symbols, model, params))
        return symbols

    def finish(self) -> np.ndarray:
        coder = constriction.stream.stack.AnsCoder()
        for symbols, model, params in reversed(self.ops):
            if params is None:
                coder.encode_reverse(symbols, model)
            else:
                coder.encode_reverse(symbols, model, params)
        return coder.get_compressed()


class _Recorded(NamedTuple):
    """One group as the adaptive encoder's walk saw it (scale bins at offset 0)."""

    k: np.ndarray
    phase: np.ndarray
    t: np.ndarray
    base: np.ndarray
    network_pred: np.ndarray
    """The network's mean (1/8 grey levels) before any correction."""
    grid: np.ndarray
    """The level grid (complete once the walk is over)."""
    group: GroupSpec
    level: int
    x: np.ndarray
    """The original pixels (near-lossless: what the fit predicts, not the reconstruction)."""


class _Recorder(_Encoder):
    """An encoder's first walk: records every group's residuals (``groups``) but codes nothing
    (an encoder's residual symbols are known before coding), so the scale offset can be
    chosen before the one real coding pass."""


class _Decoder:
    def __init__(self, words: np.ndarray) -> None:
        self.coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, np.uint32))

    def code(self, symbols, count, model, params=None) -> np.ndarray:
        if not count:
            return np.zeros(0, dtype=np.int32)
        if params is None:
            out = self.coder.decode(model, count)
        else:
            out = self.coder.decode(model, params)
        return np.asarray(out, dtype=np.int32)


def _code_residuals(io, models: EntropyModels, t, key, shift, bits: int,
                    room: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Code residual symbols ``t`` (encoder) or decode them (``t is None``).

    ``room``: the lowest and highest residual each pixel can have (bounded-range slices);
    tables that lose enough to it are truncated, and those pixels are coded after the others.
    """
    n = key.size
    truncated = None if room is None else models.truncated_keys(key, shift, room)
    if truncated is None:
        order = np.argsort(key.astype(np.int16), kind="stable")  # radix sort: keys < 2**15
        sorted_keys = key[order]
    else:
        order = np.argsort(truncated, kind="stable")
        sorted_keys = truncated[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sorted_keys)) + 1, [n]])
    runs = zip(starts[:-1].tolist(), starts[1:].tolist(), sorted_keys[starts[:-1]].tolist())
    if t is not None:
        coarse = (t >> shift) + HALF_RANGE
        escaped = (coarse < 0) | (coarse >= ESCAPE)
        symbols = np.where(escaped, ESCAPE, coarse)
        in_order = symbols[order].astype(np.int32)
        table, record = models.table, io.ops.append  # ~100 runs per group: no wrappers
        for a, b, k in runs:
            record((in_order[a:b], table(k), None))
    else:
        in_order = np.empty(n, dtype=np.int32)
        table, decode = models.table, io.coder.decode
        for a, b, k in runs:
            in_order[a:b] = decode(table(k), b - a)
        symbols = np.empty(n, dtype=np.int64)
        symbols[order] = in_order
    escaped = symbols == ESCAPE
    n_escaped = int(escaped.sum())
    raw_offset = 1 << bits
    raw_model = models.uniform(2 << bits)
    if t is None:
        t = (symbols - HALF_RANGE) << shift
        if n_escaped:
            t[escaped] = io.code(None, n_escaped, raw_model).astype(np.int64) - raw_offset
    elif n_escaped:
        io.code(t[escaped] + raw_offset, n_escaped, raw_model)
    low_needed = ~escaped & (shift > 0)
    if low_needed.any():
        sizes = (np.int32(1) << shift[low_needed]).astype(np.int32)
        if isinstance(io, _Encoder):
            low = t[low_needed] & (sizes.astype(np.int64) - 1)
            io.code(low, sizes.size, models.uniform_family, sizes)
        else:
            t[low_needed] += io.code(None, sizes.size, models.uniform_family, sizes)
    return t


def _room(params: SliceParams, base: np.ndarray, k_model: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray] | None:
    """The lowest and highest symbol a pixel predicted at ``base`` can have when every pixel
    lies in ``params.bounds``: the residual's reach, or (near-lossless) the index the quantiser
    gives the range's ends. Both quantisers are monotone in the pixel value (the inside-the-bin
    one moves a pixel one index outwards only when it is beyond its bin's shifted point, and
    then so is every pixel further out in that bin), so no pixel in range falls outside."""
    if params.bounds is None:
        return None
    lo = np.full(base.shape, params.bounds[0], dtype=np.int64)
    hi = np.full(base.shape, params.bounds[1], dtype=np.int64)
    if not params.tau:
        return lo - base, hi - base
    if params.centroid:
        return (bin_centroid.quantise(lo, base, k_model, params.tau, params.maxval)[0],
                bin_centroid.quantise(hi, base, k_model, params.tau, params.maxval)[0])
    lo, hi = lo - base, hi - base
    return (np.sign(lo) * ((np.abs(lo) + params.tau) // params.step),
            np.sign(hi) * ((np.abs(hi) + params.tau) // params.step))


def _offset_bins(k: np.ndarray, offset: int) -> np.ndarray:
    return k if not offset else np.clip(k + offset, 0, N_BINS - 1)


def predicted_mean_q3(ctx, mean_q4: np.ndarray) -> np.ndarray:
    """Mean in 1/8 grey levels: mu0 + mean offset (Q4, activity units) * s (s16 = 16 s)."""
    return (ctx.mu0 << 3) + ((mean_q4 * ctx.s16) >> 5)


def predicted_log2_scale_q6(ctx, log_scale_q4: np.ndarray) -> np.ndarray:
    """log2 of the scale in grey levels, Q6: log2(s16 / 16) + offset."""
    return ctx.log_s16 - 4 * 64 + (log_scale_q4 << 2)


def _code_group(io, models, weights, params: SliceParams, recon, errors, original, refs,
                group: GroupSpec, level_index: int, noise: LevelNoise,
                tau_map: np.ndarray | None = None, signed: np.ndarray | None = None,
                window: tuple[np.ndarray, int] | None = None) -> None:
    """Code (or decode) every pixel of one group; record |x - mu0| (and ``signed`` x - mu0,
    feature set 2) for the contexts of later groups."""
    if window is not None:
        _code_group_windowed(io, models, weights, params, recon, errors, original, refs, group,
                             level_index, noise, *window, signed)
        return
    if tau_map is not None:
        _code_group_mapped(io, models, weights, params, recon, errors, original, refs, group,
                           level_index, noise, tau_map, signed)
        return
    shape = recon.shape
    positions = group_positions(shape, group)
    n = positions.size
    if n == 0:
        return
    pred_q3, log_scale, mu0 = _predict_group(weights, params, recon, errors, refs, group,
                                             level_index, noise, n, None, signed)
    network_pred = pred_q3
    if params.corrections:
        fitted = dict(params.corrections).get(mean_fit.group_index(level_index, group))
        if fitted is not None:
            pred_q3 = mean_fit.corrected(pred_q3, recon, group, fitted, params.maxval)
    base = (pred_q3 + 4) >> 3
    if params.tau:
        log_scale -= int(ilog2_q6(np.array([params.step]))[0])
        phase = np.full(n, CENTRE_PHASE, dtype=np.int64)
    else:
        phase = pred_q3 - (base << 3) + CENTRE_PHASE
    # the bin centroid follows the model's own scale bin, never the adapted one: the adaptive
    # encoder records residuals at offset 0 and picks the offset afterwards (entropy coding only)
    k_model = scale_bin(log_scale)
    k = _offset_bins(k_model, params.offset_of(level_index, group))
    key = table_key(k, phase)
    shift = SHIFTS[k]
    t = None
    if original is not None:
        x = original.reshape(-1)[positions].astype(np.int64)
        r = x - base
        if params.tau and params.centroid:
            t = bin_centroid.quantise(x, base, k_model, params.tau, params.maxval)[0]
        elif params.tau:
            t = np.sign(r) * ((np.abs(r) + params.tau) // params.step)
        else:
            t = r
    if isinstance(io, _Recorder):
        io.groups.append(_Recorded(k, phase, t, base, network_pred, recon, group, level_index,
                                   x))
    else:
        t = _code_residuals(io, models, t, key, shift, params.bits,
                            _room(params, base, k_model))
    if params.tau and params.centroid:
        values = bin_centroid.reconstruct(base, t, k_model, params.tau, params.maxval)
        if original is not None and np.abs(values - x).max() > params.tau:
            raise AssertionError("centroid reconstruction error above tau")  # cannot happen
    elif params.tau:
        values = np.clip(base + t * params.step, 0, params.maxval)
        if original is not None and np.abs(values - x).max() > params.tau:
            raise AssertionError("near-lossless reconstruction error above tau")  # cannot happen
    else:
        # a valid stream never leaves the range; clipping keeps a corrupt one bounded until the
        # final rANS state check rejects it
        values = np.clip(base + t, 0, params.maxval)
    recon.reshape(-1)[positions] = values
    errors.reshape(-1)[positions] = np.abs(values - mu0)
    if signed is not None:
        signed.reshape(-1)[positions] = values - mu0


def _predict_group(weights, params: SliceParams, recon, errors, refs, group: GroupSpec,
                   level_index: int, noise: LevelNoise, n: int, select: np.ndarray | None,
                   signed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted mean (1/8 grey levels, clipped to range), log2 scale (Q6) and ``mu0`` of ``n``
    pixels of ``group`` (all of them, or the group indices ``select``), computed in parts over
    the worker threads. Encoder and decoder call exactly this, so their tables agree."""
    net = weights.net(group.name, len(refs))
    pred_q3 = np.empty(n, dtype=np.int64)
    log_scale = np.empty(n, dtype=np.int64)
    mu0 = np.empty(n, dtype=np.int64)

    def predict(part: slice) -> None:
        rows = part if select is None else select[part]
        ctx = group_context(recon, errors, refs, group, level_index, noise, rows, signed,
                            weights.feature_set)
        mu0[part] = ctx.mu0
        mean, ls = net(ctx.features)
        pred_q3[part] = predicted_mean_q3(ctx, mean)
        log_scale[part] = predicted_log2_scale_q6(ctx, ls)

    _run_in_parts(predict, n)
    np.clip(pred_q3, 0, params.maxval << 3, out=pred_q3)
    return pred_q3, log_scale, mu0


@dataclass(frozen=True)
class _WindowBins:
    """One group's coded refinement pixels: model outputs, windows and (encoder) bins."""

    k: np.ndarray
    phase: np.ndarray
    base: np.ndarray
    anchor: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    bins: np.ndarray
    j: np.ndarray
    k_cell: np.ndarray
    """The scale bin of a cell of ``2 tau + 1`` levels (the near-lossless tables' symbol)."""

    def sample(self, stride: int) -> _WindowBins:
        return _WindowBins(*(getattr(self, f)[::stride] for f in self.__dataclass_fields__))

    @staticmethod
    def joined(parts: list[_WindowBins]) -> _WindowBins:
        """Several groups' bins as one (one cost evaluation instead of one per group)."""
        return _WindowBins(*(np.concatenate([getattr(p, f) for p in parts])
                             for f in _WindowBins.__dataclass_fields__))

    def masses(self, models: EntropyModels, tau: int, bits: int, offset: int,
               cells: bool = False) -> np.ndarray:
        """(pixels, bins) model mass of every bin with the scale bins moved by ``offset``;
        ``cells``: ``models`` are the near-lossless tables for ``tau`` (a 0xA9 stream)."""
        counts, cumulative = models.window_tables()
        key, shift = self._tables(offset, cells)
        return coarse_window.bin_masses(counts, cumulative, key, shift, self.base, self.anchor,
                                        self.lo, self.hi, tau, bits, int(self.bins.max()), cells)

    def with_mean(self, pred_q3: np.ndarray) -> _WindowBins:
        """These bins with another predicted mean (1/8 grey levels; the cells' anchor stays)."""
        base = (pred_q3 + 4) >> 3
        return dataclasses.replace(self, base=base, phase=pred_q3 - (base << 3) + CENTRE_PHASE)

    def _tables(self, offset: int, cells: bool) -> tuple[np.ndarray, np.ndarray]:
        """(table key, low bits) of every pixel with the scale bins moved by ``offset``."""
        if cells:
            k = _offset_bins(self.k_cell, offset)
            return table_key(k, np.full(k.size, CENTRE_PHASE, dtype=np.int64)), SHIFTS[k]
        k = _offset_bins(self.k, offset)
        return table_key(k, self.phase), SHIFTS[k]

    def cost(self, models: EntropyModels, tau: int, bits: int, offset: int,
             cells: bool = False) -> float:
        """Bits the recorded bins cost with ``offset`` (encoder side, float)."""
        counts, cumulative = models.window_tables()
        key, shift = self._tables(offset, cells)
        chosen, total = coarse_window.chosen_and_total(
            counts, cumulative, key, shift, self.base, self.anchor, self.lo, self.hi, self.j,
            tau, bits, cells)
        return float(np.log2(total / chosen).sum())


class _RecordedWindow(NamedTuple):
    """One refinement group as the adaptive encoder's walk saw it (offset 0, no corrections)."""

    bins: _WindowBins
    """The coded pixels (windows of more than one bin)."""
    network_pred: np.ndarray
    """The network's mean (1/8 grey levels) of every pixel of the group."""
    grid: np.ndarray
    """The level grid (complete once the walk is over)."""
    group: GroupSpec
    level: int
    x: np.ndarray
    """Every pixel of the group, original."""
    coded: np.ndarray
    """Indices (into the group) of the pixels in ``bins``."""

    def corrected(self, fitted: tuple[int, ...], maxval: int) -> _WindowBins:
        """``bins`` with the mean corrected by ``fitted`` (:mod:`.mean_fit`); the cells'
        anchor must not follow the mean (the grid layout, or tau 0)."""
        return self.bins.with_mean(mean_fit.corrected(self.network_pred, self.grid, self.group,
                                                      fitted, maxval)[self.coded])


def _code_group_windowed(io, models, weights, params: SliceParams, recon, errors, original, refs,
                         group: GroupSpec, level_index: int, noise: LevelNoise,
                         coarse: np.ndarray, coarse_tau: int,
                         signed: np.ndarray | None = None) -> None:
    """:func:`_code_group` for a refinement layer: each pixel codes only its bin inside the
    coarse layer's window (``coarse`` at this level, bound ``coarse_tau``), with the model's
    lossless distribution (or, ``params.cell_tables``, its near-lossless one for tau) summed
    per bin (:mod:`.coarse_window`); one-bin windows cost nothing."""
    positions = group_positions(recon.shape, group)
    n = positions.size
    if n == 0:
        return
    pred_q3, log_scale, mu0 = _predict_group(weights, params, recon, errors, refs, group,
                                             level_index, noise, n, None, signed)
    network_pred = pred_q3
    if params.corrections:  # (the encoder uses them only where the anchor does not move)
        fitted = dict(params.corrections).get(mean_fit.group_index(level_index, group))
        if fitted is not None:
            pred_q3 = mean_fit.corrected(pred_q3, recon, group, fitted, params.maxval)
    base = (pred_q3 + 4) >> 3
    phase = pred_q3 - (base << 3) + CENTRE_PHASE
    k_model = scale_bin(log_scale)
    k_cell = scale_bin(log_scale - int(ilog2_q6(np.array([params.step]))[0])) if params.tau \
        else k_model
    lo, hi = coarse_window.window(coarse.reshape(-1)[positions], coarse_tau, params.maxval)
    anchor = base if params.centred_cells else lo + params.tau
    bins = coarse_window.bin_count(anchor, lo, hi, params.tau)
    coded = np.flatnonzero(bins > 1)
    j = np.zeros(n, dtype=np.int64)
    x = None
    if original is not None:
        x = original.reshape(-1)[positions].astype(np.int64)
        j = coarse_window.bin_index(x, anchor, lo, params.tau)
        if (j < 0).any() or (j >= bins).any():
            raise AssertionError("pixel outside its coarse window")  # the coarse layer's bound
    if coded.size:
        group_bins = _WindowBins(k_model[coded], phase[coded], base[coded], anchor[coded],
                                 lo[coded], hi[coded], bins[coded], j[coded], k_cell[coded])
        if isinstance(io, _Recorder):
            io.groups.append(_RecordedWindow(group_bins, network_pred, recon, group, level_index,
                                             x, coded))
        else:
            symbols = io.code(j[coded] if original is not None else None, coded.size,
                              models.categorical_family,
                              group_bins.masses(models, params.tau, params.bits,
                                                params.offset_of(level_index, group),
                                                params.cell_tables))
            # a corrupt stream may decode a padded bin: keep it in the window (the CRC rejects it)
            j[coded] = np.minimum(symbols, bins[coded] - 1)
    values = coarse_window.bin_value(anchor, lo, hi, j, params.tau)
    if original is not None and np.abs(values - x).max() > params.tau:
        raise AssertionError("refinement reconstruction error above tau")  # cannot happen
    recon.reshape(-1)[positions] = values
    errors.reshape(-1)[positions] = np.abs(values - mu0)
    if signed is not None:
        signed.reshape(-1)[positions] = values - mu0


def _code_group_mapped(io, models, weights, params: SliceParams, recon, errors, original, refs,
                       group: GroupSpec, level_index: int, noise: LevelNoise,
                       tau_map: np.ndarray, signed: np.ndarray | None = None) -> None:
    """:func:`_code_group` with a per-pixel tau (``tau_map`` at this level; -1 = not coded)."""
    positions = group_positions(recon.shape, group)
    if positions.size == 0:
        return
    pixel_tau = tau_map.reshape(-1)[positions].astype(np.int64)
    coded = np.flatnonzero(pixel_tau >= 0)
    n = coded.size
    values_all = refs[0].reshape(-1)[positions].astype(np.int64) if n < positions.size else None
    if values_all is not None:
        np.clip(values_all, 0, params.maxval, out=values_all)
    else:
        values_all = np.empty(positions.size, dtype=np.int64)
    if n:
        pred_q3, log_scale, _ = _predict_group(weights, params, recon, errors, refs, group,
                                               level_index, noise, n, coded, signed)
        base = (pred_q3 + 4) >> 3
        tau = pixel_tau[coded]
        step = 2 * tau + 1
        log_scale -= np.where(tau > 0, ilog2_q6(step), 0)  # as the uniform path: tau 0 -> 0
        phase = np.where(tau > 0, CENTRE_PHASE, pred_q3 - (base << 3) + CENTRE_PHASE)
        k = _offset_bins(scale_bin(log_scale), params.scale_offset)
        key = table_key(k, phase)
        shift = SHIFTS[k]
        t = None
        if original is not None:
            x = original.reshape(-1)[positions[coded]].astype(np.int64)
            r = x - base
            t = np.sign(r) * ((np.abs(r) + tau) // step)
        t = _code_residuals(io, models, t, key, shift, params.bits)
        values = np.clip(base + t * step, 0, params.maxval)
        if original is not None and (np.abs(values - x) > tau).any():
            raise AssertionError("ROI reconstruction error above its tau")  # cannot happen
        values_all[coded] = values
    recon.reshape(-1)[positions] = values_all
    mu0 = (np.take(recon.reshape(-1), neighbour_indices(recon.shape, group)[:NEAREST])
           .sum(axis=0, dtype=np.int64) + NEAREST // 2) >> 2
    errors.reshape(-1)[positions] = np.abs(values_all - mu0)
    if signed is not None:
        signed.reshape(-1)[positions] = values_all - mu0


def _walk(io, models, weights, params: SliceParams, shape, image, refs,
          tau_map: np.ndarray | None = None, window_bound: int = 0) -> np.ndarray:
    """Encode (``image`` given) or decode (``image`` None) one slice; return the reconstruction.

    ``refs`` are reconstructed earlier slices (int32); the reconstruction returned is int32.
    ``tau_map``: per-pixel tau (-1 = take ``refs[0]``), see the module docstring.
    ``window_bound``: a refinement layer: ``refs[0]`` is this slice coded within this bound and
    every pixel codes only its bin inside that window (:func:`_code_group_windowed`); the
    network's references are then ``refs[1:]`` (measured: giving it the coarse slice too makes it
    overconfident, 3-9% more bits than its intra-slice context alone on emri_small, 13-4).
    """
    shapes = pyramid_shapes(*shape)
    top = len(shapes) - 1
    if tau_map is not None and tau_map[0, 0] < 0:
        value = [int(np.clip(refs[0][0, 0], 0, params.maxval))]
    elif window_bound:
        lo, hi = coarse_window.window(refs[0][:1, :1].reshape(-1), window_bound, params.maxval)
        anchor = lo + params.tau  # no prediction for the first pixel: cells from the window's start
        bins = int(coarse_window.bin_count(anchor, lo, hi, params.tau)[0])
        j = np.zeros(1, dtype=np.int64)
        if image is not None:
            j = coarse_window.bin_index(image[:1, :1].reshape(-1).astype(np.int64), anchor, lo,
                                        params.tau)
        if bins > 1:
            j = np.minimum(io.code(j, 1, models.uniform(bins)), bins - 1)
        value = coarse_window.bin_value(anchor, lo, hi, j, params.tau)
    else:
        first = None if image is None else image[:1, :1].reshape(-1)
        value = io.code(first, 1, models.uniform(max(2, 1 << params.bits)))
    recon = np.asarray(value, dtype=np.int32).reshape(1, 1)
    errors = np.zeros((1, 1), dtype=np.int32)
    signed = np.zeros((1, 1), dtype=np.int32) if weights.feature_set >= 2 else None
    for level in range(top - 1, -1, -1):
        stride = 1 << level
        grid = np.zeros(shapes[level], dtype=np.int32)
        grid[0::2, 0::2] = recon
        level_errors = np.zeros(shapes[level], dtype=np.int32)
        level_errors[0::2, 0::2] = errors
        level_signed = None
        if signed is not None:
            level_signed = np.zeros(shapes[level], dtype=np.int32)
            level_signed[0::2, 0::2] = signed
        noise = level_noise(recon, errors)
        original = None if image is None else image[::stride, ::stride]
        level_refs = [np.ascontiguousarray(r[::stride, ::stride], dtype=np.int32) for r in refs]
        level_map = None if tau_map is None else tau_map[::stride, ::stride]
        level_window = None
        if window_bound:  # the coarse slice gives the window; the network sees the others
            level_window = (level_refs[0], window_bound)
            level_refs = level_refs[1:]
        level_params, level_models = params.at_level(level), params.models_at(models, level)
        for group in GROUPS:
            _code_group(io, level_models, weights, level_params, grid, level_errors, original,
                        level_refs, group, level, noise, level_map, level_signed, level_window)
        recon, errors, signed = grid, level_errors, level_signed
    return recon


def _check_tau_map(tau_map: np.ndarray | None, shape, refs) -> np.ndarray | None:
    if tau_map is None:
        return None
    tau_map = np.ascontiguousarray(tau_map, dtype=np.int32)
    if tau_map.shape != tuple(shape):
        raise ValueError(f"tau_map {tau_map.shape} does not match the image {tuple(shape)}")
    if (tau_map < 0).any() and not refs:
        raise ValueError("uncoded pixels (tau_map -1) need a reference image to take")
    return tau_map


def _check_window(window_bound: int, params: SliceParams, refs, tau_map) -> None:
    if params.level_taus and (window_bound or tau_map is not None or not params.tau
                              or max(params.level_taus) > params.tau
                              or min(params.level_taus) < 0):
        raise ValueError("level bounds belong to an ordinary near-lossless slice, each within "
                         "its tau")
    if window_bound and (window_bound <= params.tau or not refs or tau_map is not None
                         or params.centroid):
        raise ValueError("a refinement needs a coarser bound than its own, the coarse slice as "
                         "first reference, and neither a tau map nor centroid reconstruction")


def encode_slice(image: np.ndarray, params: SliceParams, refs: list[np.ndarray],
                 weights: NeuralWeights, models: EntropyModels,
                 tau_map: np.ndarray | None = None,
                 window_bound: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (rANS words, reconstruction as int32).

    ``tau_map`` (optional): per-pixel tau, -1 = keep ``refs[0]`` (``params.tau`` is then unused).
    ``window_bound`` (optional): refine ``refs[0]``, this slice coded within that bound.
    """
    io = _Encoder()
    tau_map = _check_tau_map(tau_map, image.shape, refs)
    _check_window(window_bound, params, refs, tau_map)
    with blas_threads():
        recon = _walk(io, models, weights, params, image.shape, image.astype(np.int32), refs,
                      tau_map, window_bound)
    return io.finish(), recon


def decode_slice(words: np.ndarray, shape: tuple[int, int], params: SliceParams,
                 refs: list[np.ndarray], weights: NeuralWeights,
                 models: EntropyModels, tau_map: np.ndarray | None = None,
                 window_bound: int = 0) -> np.ndarray:
    """Inverse of :func:`encode_slice`; CorruptDataError if the words do not decode cleanly."""
    tau_map = _check_tau_map(tau_map, shape, refs)
    _check_window(window_bound, params, refs, tau_map)
    try:
        io = _Decoder(words)
        with blas_threads():
            recon = _walk(io, models, weights, params, shape, None, refs, tau_map, window_bound)
        clean = io.coder.is_empty()
    except CorruptDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - constriction raises several types on bad data
        raise CorruptDataError(f"neural stream does not decode: {exc}") from None
    if not clean:
        raise CorruptDataError("neural stream is corrupt (rANS state does not match)")
    return recon
