"""The encoder's choices for one slice, made from measured cost after a recorded walk.

The decoder only follows what the stream says; everything here runs on the encoder side:
the scale offset (0xA4), the slice's value range (0xA8, :mod:`.truncation`), least-squares
corrections of the network's mean (0xA8, :mod:`.mean_fit`), and the cell layout and offset of
a progressive refinement layer (0xA7). Each choice is estimated from a walk that records the
residuals without coding them (:class:`slice_coder._Recorder`), then the slice is coded once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from fedcodec.shared.neural import bin_centroid, coarse_window, mean_fit
from fedcodec.shared.neural.geometry import GroupSpec
from fedcodec.shared.neural.slice_coder import (
    EntropyModels,
    SliceParams,
    _check_window,
    _code_residuals,
    _Encoder,
    _offset_bins,
    _Recorded,
    _RecordedWindow,
    _Recorder,
    _room,
    _walk,
    _WindowBins,
    blas_threads,
)
from fedcodec.shared.neural.stream_format import StreamHeader, pack, write_varint
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

    Mean corrections (:mod:`.mean_fit`) are chosen from estimates; the slice is then coded both
    without and with them (near-lossless after a second walk, since the reconstructions follow
    the prediction) and the shorter stream, header included, is kept: so a correction fitted to
    the first walk's contexts never makes a slice larger (measured on 16-bit field maps at large
    tau, where it did: ``experiments/lossy_rd.py``).
    """
    io = _Recorder()
    with blas_threads():
        recon = _walk(io, models, weights, params, image.shape, image.astype(np.int32), refs)
    variants = [(io, recon, params)]  # (walk, reconstruction, params); uncorrected first
    if fit_means and not params.corrections:
        groups, fitted = _fit_means(io.groups, params, models)
        if fitted.corrections and params.tau:  # reconstructions follow the prediction:
            again = _Recorder()                  # walk again with the corrections
            with blas_threads():
                variants.append((again, _walk(again, models, weights, fitted, image.shape,
                                              image.astype(np.int32), refs), fitted))
        elif fitted.corrections:
            corrected = _Recorder()
            corrected.ops, corrected.groups = io.ops, groups
            variants.append((corrected, recon, fitted))
    sets = [(models, False)]
    if cell_models is not None and cell_models is not models and params.tau:
        sets.append((cell_models, True))
    best: tuple[int, np.ndarray, np.ndarray, SliceParams] | None = None
    for walk, walk_recon, start in variants:
        for tables, cells in sets:  # the lossless tables first: they win ties
            words, chosen = _code_recorded(walk.ops[0], walk.groups, image, tables,
                                           dataclasses.replace(start, cell_tables=cells),
                                           group_offsets, truncate)
            size = 4 * words.size + _header_bytes(chosen)
            if best is None or size < best[0]:
                best = (size, words, walk_recon, chosen)
    return best[1:]


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
        chosen = _choose_group_offsets(chosen, _residual_group_costs(groups, log_p,
                                                                     params.bits))[0]
    if truncate and params.bounds is None:
        chosen = _choose_bounds(chosen, image, groups, models)
    adapted = _Encoder()
    adapted.ops.append(top)  # the top pixel, coded uniformly
    for g in groups:  # with level bounds and near-lossless tables, each level's own set
        kk = _offset_bins(g.k, chosen.offset_of(g.level, g.group))
        _code_residuals(adapted, chosen.models_at(models, g.level), g.t, table_key(kk, g.phase),
                        SHIFTS[kk], params.bits, _room(chosen.at_level(g.level), g.base, g.k))
    return adapted.finish(), chosen


GROUP_OFFSET_REACH = 8
"""A group's own offset is searched within this many bins of the slice's."""


def _choose_group_offsets(params: SliceParams, group_costs: Iterable[tuple[int, Callable]]
                          ) -> tuple[SliceParams, float]:
    """``params`` with an extra offset for every group whose best offset saves more than the
    bytes it costs (its number and the offset, ~2 bytes; the first also a flags byte and a
    count), and the bits saved. ``group_costs``: (group number, estimated bits as a function of
    the group's whole offset) of each group worth trying. One offset for the slice leaves bits
    on the table once groups differ: measured -1.3 % on the PyPI 1024² MR after its mean
    corrections, -2 % on GE 3-D T1 slices."""
    extra, saved = [], 0.0
    for number, cost in group_costs:
        costs = descend(lambda delta, cost=cost: cost(params.scale_offset + delta),
                        GROUP_OFFSET_REACH)
        best = min(costs, key=costs.get)
        if best and costs[0] - costs[best] > 8 * 2 + 8:  # its bytes + one of margin
            extra.append((number, best))
            saved += costs[0] - costs[best]
    if not extra:
        return params, 0.0
    return dataclasses.replace(params, group_offsets=tuple(sorted(extra))), saved


def _residual_group_costs(groups: list[_Recorded], log_p: np.ndarray, bits: int
                          ) -> Iterator[tuple[int, Callable[[int], float]]]:
    """For :func:`_choose_group_offsets`: each recorded group of 256 pixels or more, with its
    cost on about ADAPT_SAMPLE / 2 of its pixels."""
    for g in groups:
        if g.t.size < 256:
            continue
        stride = max(1, g.t.size // (ADAPT_SAMPLE // 2))
        sample = [(g.k[::stride], g.phase[::stride], g.t[::stride])]

        def cost(offset: int, sample=sample, stride=stride) -> float:
            if abs(offset) > MAX_SCALE_OFFSET:
                return float("inf")  # beyond what the stream can say
            return stride * _code_length(log_p, sample, offset, bits)
        yield mean_fit.group_index(g.level, g.group), cost


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
            stride = max(1, g.t.size // (ADAPT_SAMPLE // 2))
            select = np.arange(0, g.t.size, stride)

            def cost(pred: np.ndarray | None, g=g, select=select, stride=stride) -> float:
                if pred is None:
                    k, phase, t = g.k[select], g.phase[select], g.t[select]
                else:
                    k = g.k[select]
                    t, phase = _residuals(params.at_level(g.level), g.x[select], pred, k,
                                          g.phase[select])[:2]
                return stride * min(_code_length(log_p, [(k, phase, t)], offset, params.bits)
                                    for offset in (-2, -1, 0, 1))

            fitted = _best_correction(g.network_pred, g.grid, g.group, g.x, params,
                                      select, cost)
            if fitted is not None:
                kept.append((mean_fit.group_index(g.level, g.group), fitted))
                pred = mean_fit.corrected(g.network_pred, g.grid, g.group, fitted, params.maxval)
                t, phase, base = _residuals(params.at_level(g.level), g.x, pred, g.k, g.phase)
                g = g._replace(phase=phase, t=t, base=base)
        out.append(g)
    if not kept:
        return groups, params
    return out, dataclasses.replace(params, corrections=tuple(sorted(kept)))


def _residuals(params: SliceParams, x: np.ndarray, pred: np.ndarray, k: np.ndarray,
               phase: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coded residuals, table phases, rounded means) of pixels ``x`` predicted at ``pred``
    (1/8 grey levels), as :func:`.slice_coder._code_group` codes them."""
    base = (pred + 4) >> 3
    if not params.tau:
        return x - base, pred - (base << 3) + CENTRE_PHASE, base
    if params.centroid:
        return bin_centroid.quantise(x, base, k, params.tau, params.maxval)[0], phase, base
    r = x - base
    return np.sign(r) * ((np.abs(r) + params.tau) // params.step), phase, base


def _best_correction(network_pred: np.ndarray, grid: np.ndarray, group: GroupSpec,
                     x: np.ndarray, params: SliceParams, select: np.ndarray,
                     cost: Callable[[np.ndarray | None], float]) -> tuple[int, ...] | None:
    """Of the corrections fitted with each tap count of :func:`.mean_fit.tap_counts`, the one
    whose estimated saving beats its bytes by the most (and by two bytes of margin: the costs
    are estimates), or None. ``cost(pred)``: estimated bits of the group given the corrected
    predictions of its pixels ``select`` (None: uncorrected)."""
    plain = cost(None)
    best, margin = None, 16.0
    counts = mean_fit.tap_counts(group, params.tau)
    diffs = mean_fit.differences(network_pred[select], grid, group, max(counts), select)
    for count, fitted in mean_fit.fit(network_pred, grid, group, x, counts).items():
        if fitted is None:
            continue
        pred = mean_fit.applied(network_pred[select], diffs, fitted, params.maxval)
        weight_bytes = sum(len(write_varint(2 * abs(w))) for w in fitted)
        net = plain - cost(pred) - 8 * (1 + (count != len(group.offsets)) + weight_bytes)
        if net > margin:
            best, margin = fitted, net
    return best


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
        gain += bounded.models_at(models, g.level).truncation_gain(
            table_key(kk, g.phase), SHIFTS[kk], _room(bounded.at_level(g.level), g.base, g.k))
    header = len(write_varint(lo)) + len(write_varint(params.maxval - hi))
    extended = params.corrections or params.group_offsets
    header += 0 if extended else 1  # the flags byte
    header += 0 if params.scale_offset or params.centroid or extended else 1
    return bounded if gain > 8 * header + 8 else params  # + a byte of margin: it is an estimate


def encode_refinement_adaptive(image: np.ndarray, params: SliceParams, refs: list[np.ndarray],
                               weights: NeuralWeights, models: EntropyModels, window_bound: int,
                               cell_models: EntropyModels | None = None, fit_means: bool = True,
                               group_offsets: bool = True
                               ) -> tuple[np.ndarray, np.ndarray, SliceParams]:
    """:func:`encode_slice` of a refinement layer with the slice's best cell layout, mean
    corrections, table set and scale offsets: (words, recon, the params used), as
    :func:`encode_slice_adaptive` does for ordinary slices.

    Both layouts of :mod:`.coarse_window` are walked (lossless layers have only one). On the
    grid layout (where the cells do not follow the mean, so a corrected mean changes no
    reconstruction) large groups get least-squares mean corrections where they pay
    (:mod:`.mean_fit`). For each table set, the lossless tables and, where the model has them,
    ``cell_models`` (its near-lossless tables for tau), the layout, the slice's and the groups'
    scale offsets are chosen from the recorded bins, and each set's choice is coded: the shorter
    stream is kept, so the near-lossless set never makes a layer larger. Corrections, group
    offsets and the near-lossless set make the stream an extended refinement (0xA9)."""
    _check_window(window_bound, params, refs, None)
    sets = [(models, False)]
    if (cell_models is not None and cell_models is not models
            and 1 <= params.tau <= coarse_window.MAX_CELL_TAU):
        sets.append((cell_models, True))
    best: list = [None] * len(sets)  # per table set: (cost, params, groups, walk)
    walks = []
    for centred in (False, True) if params.tau else (False,):
        trial = dataclasses.replace(params, centred_cells=centred, scale_offset=0)
        io = _Recorder()
        with blas_threads():
            recon = _walk(io, models, weights, trial, image.shape, image.astype(np.int32),
                          refs, None, window_bound)
        walks.append(recon)
        recorded: list[_RecordedWindow] = io.groups
        bins = [g.bins for g in recorded]
        if fit_means and not centred:
            trial, bins = _fit_window_means(recorded, trial, models)
        for i, (tables, cells) in enumerate(sets):
            offset, cost = _best_window_offset(bins, tables, trial, cells)
            chosen = dataclasses.replace(trial, scale_offset=offset, cell_tables=cells)
            if group_offsets:
                chosen, saved = _choose_group_offsets(chosen, (
                    (mean_fit.group_index(g.level, g.group),
                     _sampled_cost([b], tables, chosen, cells))
                    for g, b in zip(recorded, bins) if b.j.size >= 256))
                cost -= saved
            if best[i] is None or cost < best[i][0]:
                best[i] = (cost, chosen, (io.ops, recorded, bins), len(walks) - 1)
    coded = None
    for (tables, _), (_, chosen, (top, recorded, bins), walk) in zip(sets, best):
        adapted = _Encoder()  # lossless tables first: they win ties
        adapted.ops.extend(top)  # the top pixel, if its window holds more than one bin
        for g, b in zip(recorded, bins):
            adapted.code(b.j, b.j.size, tables.categorical_family,
                         b.masses(tables, chosen.tau, chosen.bits,
                                  chosen.offset_of(g.level, g.group), chosen.cell_tables))
        words = adapted.finish()
        size = 4 * words.size + _header_bytes(chosen, window_bound)
        if coded is None or size < coded[0]:
            coded = (size, words, walks[walk], chosen)
    return coded[1:]


def _header_bytes(params: SliceParams, window_bound: int = 0) -> int:
    """Bytes of a stream's header with ``params``' choices: corrections, group offsets and the
    flags byte of an extended slice count (a wide correction is ~2 bytes a weight, and on
    64x64 slices one byte is ~0.3 % of a refinement layer)."""
    header = StreamHeader(1, 1, params.bits, params.tau, True, (1,), bytes(2), 0,
                          scale_offset=params.scale_offset, centroid=params.centroid,
                          window_bound=window_bound, centred_cells=params.centred_cells,
                          bounds=params.bounds, corrections=params.corrections,
                          group_offsets=params.group_offsets, cell_tables=params.cell_tables,
                          level_taus=() if window_bound else params.level_taus)
    return len(pack(header, np.zeros(0, dtype=np.uint32)))


def _sampled_cost(bins: list[_WindowBins], models: EntropyModels, params: SliceParams,
                  cells: bool) -> Callable[[int], float]:
    """The estimated bits (on about ADAPT_SAMPLE pixels) of recorded refinement bins, as a
    function of the scale offset."""
    if not bins:  # every window a single bin: nothing is coded
        return lambda offset: 0.0 if abs(offset) <= MAX_SCALE_OFFSET else float("inf")
    stride = max(1, sum(b.j.size for b in bins) // ADAPT_SAMPLE)
    sampled = _WindowBins.joined([b.sample(stride) for b in bins])

    def cost(offset: int) -> float:
        if abs(offset) > MAX_SCALE_OFFSET:
            return float("inf")  # beyond what the stream can say
        return stride * sampled.cost(models, params.tau, params.bits, offset, cells)
    return cost


def _best_window_offset(bins: list[_WindowBins], models: EntropyModels, params: SliceParams,
                        cells: bool = False) -> tuple[int, float]:
    """The scale offset with the shortest code for recorded refinement bins, and that cost
    (bits, estimated): a descent from 0, as :func:`best_scale_offset` does."""
    costs = descend(_sampled_cost(bins, models, params, cells), MAX_SCALE_OFFSET)
    best = min(costs, key=costs.get)
    return best, costs[best]


def _fit_window_means(recorded: list[_RecordedWindow], params: SliceParams,
                      models: EntropyModels) -> tuple[SliceParams, list[_WindowBins]]:
    """Mean corrections of the large groups of a refinement walk (grid layout: the cells do
    not move with the mean) kept where their estimated saving beats their bytes, and every
    group's bins as they will be coded."""
    kept, out = [], []
    for g in recorded:
        b = g.bins
        if g.x.size >= mean_fit.MIN_PIXELS and b.j.size:
            stride = max(1, b.j.size // (ADAPT_SAMPLE // 2))
            sampled = b.sample(stride)

            def cost(pred: np.ndarray | None, sampled=sampled, stride=stride) -> float:
                bins = sampled if pred is None else sampled.with_mean(pred)
                return stride * min(bins.cost(models, params.tau, params.bits, offset)
                                    for offset in (-2, -1, 0, 1))

            fitted = _best_correction(g.network_pred, g.grid, g.group, g.x, params,
                                      g.coded[::stride], cost)
            if fitted is not None:
                kept.append((mean_fit.group_index(g.level, g.group), fitted))
                b = g.corrected(fitted, params.maxval)
        out.append(b)
    if not kept:
        return params, out
    return dataclasses.replace(params, corrections=tuple(sorted(kept))), out
