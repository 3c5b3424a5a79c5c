"""The encoder's choices for one slice, made from measured cost after a recorded walk.

The decoder only follows what the stream says; everything here runs on the encoder side:
the scale offset (0xA4), the slice's value range (0xA8, :mod:`.truncation`), least-squares
corrections of the network's mean (0xA8, :mod:`.mean_fit`), and the cell layout and offset of
a progressive refinement layer (0xA7). Each choice is estimated from a walk that records the
residuals without coding them (:class:`slice_coder._Recorder`), then the slice is coded once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from fedcodec.shared.neural import bin_centroid, mean_fit
from fedcodec.shared.neural.slice_coder import (
    EntropyModels,
    SliceParams,
    _check_window,
    _code_residuals,
    _Encoder,
    _offset_bins,
    _Recorded,
    _Recorder,
    _room,
    _walk,
    _WindowBins,
    blas_threads,
)
from fedcodec.shared.neural.stream_format import write_varint
from fedcodec.shared.neural.tables import CENTRE_PHASE, ESCAPE, HALF_RANGE, SHIFTS, table_key
from fedcodec.shared.neural.weights import NeuralWeights


MAX_SCALE_OFFSET = 24
"""Offsets reach 4 octaves either way (a signed byte in the stream)."""


def _code_length(log_p: np.ndarray, groups, offset: int, bits: int) -> float:
    """Bits the residuals of ``groups`` cost with the scale bins moved by ``offset``."""
    total = 0.0
    for k, phase, t, *_ in groups:
        kk = _offset_bins(k, offset)
        shift = SHIFTS[kk]
        coarse = (t >> shift) + HALF_RANGE
        escaped = (coarse < 0) | (coarse >= ESCAPE)
        symbols = np.where(escaped, ESCAPE, coarse)
        total += float(-log_p[table_key(kk, phase), symbols].sum())
        total += float(np.where(escaped, bits + 1, shift).sum())
    return total


ADAPT_SAMPLE = 1 << 14
"""The offset is chosen on about this many of the slice's pixels (every n-th of each group):
the choice only needs the cost's minimum, and costs ~40 % of an encode on all pixels."""


def descend(cost: Callable[[int], float], reach: int) -> dict[int, float]:
    """Costs of the offsets tried by a descent from 0, one bin at a time, first upwards, then
    (only if going up did not help) downwards, each side until the cost stops falling or
    ``reach`` is passed: the cost is close to convex in the offset."""
    costs = {0: cost(0)}
    for direction in (1, -1):
        offset = direction
        while abs(offset) <= reach:
            costs[offset] = cost(offset)
            if costs[offset] >= costs[offset - direction]:
                break
            offset += direction
        if len(costs) > 2 and direction == 1:
            break  # the positive side improved: no need to look below zero
    return costs


def best_scale_offset(log_p: np.ndarray, groups, bits: int) -> int:
    """The scale offset with the shortest code for the recorded residuals: a descent from 0
    in the better direction, one bin at a time (the cost is close to convex in the offset)."""
    stride = max(1, sum(g[2].size for g in groups) // ADAPT_SAMPLE)
    if stride > 1:
        groups = [(k[::stride], phase[::stride], t[::stride]) for k, phase, t, *_ in groups]
    costs = descend(lambda offset: _code_length(log_p, groups, offset, bits), MAX_SCALE_OFFSET)
    best = min(costs, key=costs.get)
    return best if stride * costs[best] + 8 < stride * costs[0] else 0  # it costs a header byte


def encode_slice_adaptive(image: np.ndarray, params: SliceParams, refs: list[np.ndarray],
                          weights: NeuralWeights, models: EntropyModels,
                          truncate: bool = True, fit_means: bool = True,
                          group_offsets: bool = True, cell_models: EntropyModels | None = None
                          ) -> tuple[np.ndarray, np.ndarray, SliceParams]:
    """:func:`encode_slice` with the slice's best scale offset and its value range when that
    pays: (words, recon, the params used, which the stream must record).

    One walk records every residual without coding; the offset with the shortest code (from
    the count tables, float arithmetic on the encoder side only) is chosen, then the residuals
    are coded once with it. Neither choice changes a prediction or a reconstruction (only the
    tables), so the bounded range (:mod:`.truncation`) is chosen after the walk too: kept when
    its estimated saving beats the header bytes it costs. The decoder reads both from the
    stream. ``cell_models``: the model's near-lossless tables for this tau, if it has them: the
    residuals are coded with each set (the walk, the expensive part, is shared) and the shorter
    stream kept, flagged in the stream when it is theirs, so the choice is made per slice.
    """
    io = _Recorder()
    with blas_threads():
        recon = _walk(io, models, weights, params, image.shape, image.astype(np.int32), refs)
        groups = io.groups
        if fit_means and not params.corrections:
            groups, params = _fit_means(groups, params, models)
            if params.tau and params.corrections:  # reconstructions follow the prediction:
                io = _Recorder()                    # walk again with the corrections
                recon = _walk(io, models, weights, params, image.shape,
                              image.astype(np.int32), refs)
                groups = io.groups
    candidates = [(models, params)]
    if cell_models is not None and cell_models is not models and params.tau:
        candidates.append((cell_models, dataclasses.replace(params, cell_tables=True)))
    best: tuple[np.ndarray, SliceParams] | None = None
    for tables, start in candidates:  # the lossless tables first: they win ties
        words, chosen = _code_recorded(io.ops[0], groups, image, tables, start, group_offsets,
                                       truncate)
        if best is None or words.size < best[0].size:
            best = (words, chosen)
    return best[0], recon, best[1]


def _code_recorded(top, groups: list[_Recorded], image: np.ndarray, models: EntropyModels,
                   params: SliceParams, group_offsets: bool, truncate: bool
                   ) -> tuple[np.ndarray, SliceParams]:
    """The recorded residuals coded with ``models``' tables after choosing, from them, the scale
    offset, the groups' own offsets and the value range: (words, the params used). Run for the
    lossless tables and, where the model has them, its near-lossless tables for the slice's tau
    (``params.cell_tables``); the shorter stream is kept, so a set fitted to other scanners can
    never make a slice larger (``experiments/cell_tables_gain.py``)."""
    log_p = models.log_probabilities()
    offset = best_scale_offset(log_p, groups, params.bits)
    chosen = dataclasses.replace(params, scale_offset=offset)
    if group_offsets:
        chosen = _choose_group_offsets(chosen, groups, log_p)
    if truncate and params.bounds is None:
        chosen = _choose_bounds(chosen, image, groups, models)
    adapted = _Encoder()
    adapted.ops.append(top)  # the top pixel, coded uniformly
    for g in groups:
        kk = _offset_bins(g.k, chosen.offset_of(g.level, g.group))
        _code_residuals(adapted, models, g.t, table_key(kk, g.phase), SHIFTS[kk], params.bits,
                        _room(chosen, g.base, g.k))
    return adapted.finish(), chosen


GROUP_OFFSET_REACH = 8
"""A group's own offset is searched within this many bins of the slice's."""


def _choose_group_offsets(params: SliceParams, groups: list[_Recorded], log_p: np.ndarray
                          ) -> SliceParams:
    """``params`` with an extra offset for every group whose best offset saves more than the
    bytes it costs (its number and the offset, ~2 bytes; the first also a flags byte and a
    count). One offset for the slice leaves bits on the table once groups differ: measured
    -1.3 % on the PyPI 1024² MR after its mean corrections, -2 % on GE 3-D T1 slices."""
    extra = []
    for g in groups:
        if g.t.size < 256:
            continue
        stride = max(1, g.t.size // (ADAPT_SAMPLE // 2))
        sample = [(g.k[::stride], g.phase[::stride], g.t[::stride])]
        def cost(delta: int, sample=sample) -> float:
            if abs(params.scale_offset + delta) > MAX_SCALE_OFFSET:
                return float("inf")  # beyond what the stream can say
            return _code_length(log_p, sample, params.scale_offset + delta, params.bits)

        costs = descend(cost, GROUP_OFFSET_REACH)  # from the slice's offset
        best = min(costs, key=costs.get)
        if best and stride * (costs[0] - costs[best]) > 8 * 2 + 8:  # its bytes + one of margin
            extra.append((mean_fit.group_index(g.level, g.group), best))
    if not extra:
        return params
    return dataclasses.replace(params, group_offsets=tuple(sorted(extra)))


def _fit_means(groups: list[_Recorded], params: SliceParams, models: EntropyModels
               ) -> tuple[list[_Recorded], SliceParams]:
    """Fit a mean correction to every large group of a walk (:mod:`.mean_fit`) and keep those
    whose estimated saving beats their bytes; the groups as they will be coded (lossless: the
    walk's own, corrected; near-lossless the caller walks again, since the reconstructions,
    hence later contexts, follow the prediction)."""
    log_p = models.log_probabilities()
    out, kept = [], []
    for g in groups:
        if g.t.size >= mean_fit.MIN_PIXELS:
            x = g.x
            fitted = mean_fit.fit(g.network_pred, g.grid, g.group, x)
            if fitted is not None:
                pred = mean_fit.corrected(g.network_pred, g.grid, g.group, fitted, params.maxval)
                base = (pred + 4) >> 3
                if not params.tau:
                    t, phase = x - base, pred - (base << 3) + CENTRE_PHASE
                elif params.centroid:
                    t = bin_centroid.quantise(x, base, g.k, params.tau, params.maxval)[0]
                    phase = g.phase
                else:
                    r = x - base
                    t, phase = np.sign(r) * ((np.abs(r) + params.tau) // params.step), g.phase
                trial = g._replace(phase=phase, t=t, base=base)
                cost = 8 * (1 + sum(len(write_varint(2 * abs(w))) for w in fitted))
                saved = (_group_cost(log_p, g, params.bits)
                         - _group_cost(log_p, trial, params.bits))
                if saved > cost + 16:  # two bytes of margin: both costs are estimates
                    kept.append((mean_fit.group_index(g.level, g.group), fitted))
                    g = trial
        out.append(g)
    if not kept:
        return groups, params
    return out, dataclasses.replace(params, corrections=tuple(sorted(kept)))


def _group_cost(log_p: np.ndarray, g: _Recorded, bits: int) -> float:
    """Bits of one recorded group at its best scale offset in -2..1 (encoder estimate, on
    about ADAPT_SAMPLE / 2 of its pixels: a corrected mean narrows the residuals, so the best
    offset can only move down)."""
    stride = max(1, g.t.size // (ADAPT_SAMPLE // 2))
    sample = [(g.k[::stride], g.phase[::stride], g.t[::stride])]
    return stride * min(_code_length(log_p, sample, offset, bits) for offset in (-2, -1, 0, 1))


def _choose_bounds(params: SliceParams, image: np.ndarray, groups, models: EntropyModels
                   ) -> SliceParams:
    """``params`` with the slice's [min, max] when truncating to it saves more than the
    stream bytes it costs (a flags byte, the range's two varints, and the offset byte 0xA1
    lacks)."""
    lo, hi = int(image.min()), int(image.max())
    if lo == 0 and hi == params.maxval:
        return params
    bounded = dataclasses.replace(params, bounds=(lo, hi))
    gain = 0.0
    for g in groups:
        kk = _offset_bins(g.k, params.offset_of(g.level, g.group))
        gain += models.truncation_gain(table_key(kk, g.phase), SHIFTS[kk],
                                       _room(bounded, g.base, g.k))
    header = len(write_varint(lo)) + len(write_varint(params.maxval - hi))
    extended = params.corrections or params.group_offsets
    header += 0 if extended else 1  # the flags byte
    header += 0 if params.scale_offset or params.centroid or extended else 1
    return bounded if gain > 8 * header + 8 else params  # + a byte of margin: it is an estimate


def encode_refinement_adaptive(image: np.ndarray, params: SliceParams, refs: list[np.ndarray],
                               weights: NeuralWeights, models: EntropyModels, window_bound: int
                               ) -> tuple[np.ndarray, np.ndarray, SliceParams]:
    """:func:`encode_slice` of a refinement layer with the slice's best cell layout and scale
    offset: (words, recon, the params used), as :func:`encode_slice_adaptive` does for
    ordinary slices. Both layouts of :mod:`.coarse_window` are walked (lossless layers have only
    one), the scale offset is searched for each from the recorded bins (the bins, hence the
    reconstruction, do not depend on it), and the cheaper combination is coded once."""
    _check_window(window_bound, params, refs, None)
    best: tuple[float, SliceParams, _Recorder, np.ndarray] | None = None
    for centred in (False, True) if params.tau else (False,):
        trial = dataclasses.replace(params, centred_cells=centred, scale_offset=0)
        io = _Recorder()
        with blas_threads():
            recon = _walk(io, models, weights, trial, image.shape, image.astype(np.int32),
                          refs, None, window_bound)
        offset, cost = _best_window_offset(io.groups, models, trial)
        if best is None or cost < best[0]:
            best = (cost, dataclasses.replace(trial, scale_offset=offset), io, recon)
    _, chosen, io, recon = best
    adapted = _Encoder()
    adapted.ops.extend(io.ops)  # the top pixel, if its window holds more than one bin
    for g in io.groups:
        adapted.code(g.j, g.j.size, models.categorical_family,
                     g.masses(models, chosen.tau, chosen.bits, chosen.scale_offset))
    return adapted.finish(), recon, chosen


def _best_window_offset(groups: list[_WindowBins], models: EntropyModels, params: SliceParams
                        ) -> tuple[int, float]:
    """The scale offset with the shortest code for recorded refinement bins, and that cost
    (bits, estimated on about ADAPT_SAMPLE pixels): a descent from 0, as
    :func:`best_scale_offset` does."""
    stride = max(1, sum(g.j.size for g in groups) // ADAPT_SAMPLE)
    sampled = [g.sample(stride) for g in groups] if stride > 1 else groups

    def cost(offset: int) -> float:
        return stride * sum(g.cost(models, params.tau, params.bits, offset) for g in sampled)

    costs = descend(cost, MAX_SCALE_OFFSET)
    best = min(costs, key=costs.get)
    return best, costs[best]
