"""``neural:mode=lossy``: the bounded-error coder with rate and quality control.

Specs (exactly one target)::

    neural:mode=lossy,psnr=50        every slice >= 50 dB (peak 2**bits - 1), tau per slice
    neural:mode=lossy,bpp=1.5        the series at or below 1.5 bits per pixel, tau per slice
    neural:mode=lossy,ratio=10       the series at or above 10:1 (of the bits allocated)
    neural:mode=lossy,max_error=8    every pixel within 8 (= neural:tau=8)

plus the ``neural`` options ``period=`` and ``interslice=``; ``allocate=series`` gives a rate
target one tau for the whole series (default ``slices``: a tau per slice for the highest mean
slice PSNR within the budget, :func:`.rate_control.allocate_slices`); and ``centroid=0`` to
reconstruct at the bin centre (default 1: inside the bin towards the prediction,
:mod:`.bin_centroid`, measured -2% to -4% BD-rate on unseen MR,
experiments/bounded_reconstruction.py --compare); ``coarse=R`` the level bounds' ratio
(:mod:`.level_bounds`: pyramid level l within floor(tau * R**l); default 0.7 for psnr=, bpp=
and ratio=, 1 = one bound everywhere, the default for max_error=).

Every stream is an ordinary ``neural`` near-lossless stream whose header carries the tau it was
coded with, so the bound each slice guarantees is in the stream itself (:meth:`BoundedLossyCodec.guaranteed_error`), read
back by the benchmark's check and by the DICOM writer. See docs/bounded-error-lossy.md.

Until this codec, ``neural:mode=lossy`` named the learned hyperprior (``neural-lossy``); that is
now ``neural:mode=hyperprior,quality=Q``. An old spec with ``quality=`` is refused with a
one-line error naming the new one; old containers decode as before because the container
records the codec's name (``neural-lossy``), see :mod:`fedcodec.shared.codecs.renamed_specs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedcodec.shared import metrics
from fedcodec.shared.codecs.base import CodecMode, register_codec, register_mode_route
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.neural import chains
from fedcodec.shared.neural.codec import NeuralCodec
from fedcodec.shared.neural.level_bounds import DEFAULT_RATIO
from fedcodec.shared.neural.rate_control import (
    MIN_GAIN_DB,
    PSNR_CEILING,
    SERIES_SAMPLE_BLOCKS,
    SERIES_SAMPLE_SLICES,
    LossyTarget,
    allocate_slices,
    ladder_taus,
    psnr_tau_estimate,
    series_for_bpp,
    slice_for_psnr,
)
from fedcodec.shared.neural.stream_format import unpack
from fedcodec.shared.neural.tiles import is_tiled, unpack_tiled
from fedcodec.shared.neural.volume_context import reference_offsets


def recorded_bound(stream: bytes) -> int | None:
    """The bound a bounded-error stream's header records (what the encoder verified), or None
    for a stream that does not parse: the codecs whose tau varies per slice report this."""
    try:
        return stream_tau(stream)
    except CorruptDataError:
        return None


def stream_tau(data: bytes) -> int:
    """The bound a ``neural`` stream guarantees (its header's tau; the largest of a tiled one)."""
    if is_tiled(data):
        return max(stream_tau(part) for part in unpack_tiled(data)[1])
    return unpack(data)[0].tau


@register_codec
class BoundedLossyCodec(NeuralCodec):
    """The ``neural`` coder with tau chosen per slice or per series from one target."""

    name = "neural-bounded"

    def __init__(self, mode: str = "lossy", psnr: float | None = None, bpp: float | None = None,
                 ratio: float | None = None, max_error: int | None = None,
                 period: int | None = None, interslice: int = 1, weights: str | None = None,
                 centroid: int = 1, allocate: str = "slices", quality: Any = None,
                 coarse: float | None = None) -> None:
        if quality is not None:
            raise FedcodecError(
                "neural:mode=lossy,quality=Q named the learned hyperprior up to fedcodec "
                "0.1.0; neural:mode=lossy is now the bounded-error coder (one target: psnr=, "
                "bpp=, ratio= or max_error=) and the hyperprior is "
                f"neural:mode=hyperprior,quality={quality}")
        if mode != "lossy":
            raise FedcodecError(f"neural-bounded codec: mode must be lossy, not {mode!r}")
        if allocate not in ("slices", "series"):
            raise FedcodecError(f"allocate must be slices or series, not {allocate!r}")
        self.allocate = allocate
        self.target = LossyTarget.from_params(psnr=psnr, bpp=bpp, ratio=ratio,
                                              max_error=max_error)
        fixed = int(self.target.value) if self.target.kind == "max_error" else 1
        if coarse is None:  # a bound target wants the fewest bytes at it: one bound everywhere
            coarse = 1.0 if self.target.kind == "max_error" else DEFAULT_RATIO
        super().__init__(tau=fixed, period=period, interslice=interslice, weights=weights,
                         centroid=centroid, coarse=coarse)
        self.mode = CodecMode.LOSSY
        self.max_error = fixed if self.target.kind == "max_error" else None
        self.last_taus: list[int] = []
        """The tau of every slice of the last encode (for reports and experiments)."""
        self.last_candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        """The per-slice allocation's candidates in the last encode: (tau, bits, PSNR) per slice
        (row) and coding (column), or None when it did not run (experiments/study_allocation.py
        pools them across the series of a study)."""

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(target=self.target.kind, target_value=self.target.value, tau=None,
                   max_error=self.max_error, mode=self.mode.value)
        if self.target.kind in ("bpp", "ratio"):
            out.update(allocate=self.allocate)
        return out

    def guaranteed_error(self, stream: bytes) -> int | None:
        return recorded_bound(stream)

    # -- coding ------------------------------------------------------------------------------

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        image = np.asarray(image)
        self._check_image(image, bits)
        return self.encode_volume(image[None], bits)[0]

    def encode_volume(self, volume: np.ndarray, bits: int) -> list[bytes]:
        volume = np.asarray(volume)
        if volume.ndim != 3:
            raise FedcodecError(
                f"neural codec: need a (slices, rows, cols) volume, got {volume.shape}")
        if volume.shape[0] == 0:
            return []
        self._check_image(volume[0], bits)
        if int(volume.max()) >> bits:
            raise FedcodecError(f"neural codec: values exceed {bits} bits")
        period = self.volume_period(volume, bits) if self.interslice else 1
        self.last_candidates = None
        if self.target.kind == "psnr":
            streams, taus = self._per_slice_psnr(volume, bits, period)
        elif self.target.kind == "max_error":
            streams = self._code_at(volume, bits, period, [self.tau] * volume.shape[0])
            taus = [self.tau] * volume.shape[0]
        else:
            streams, taus = self._series_for_rate(volume, bits, period)
        self.last_taus = taus
        return streams

    def _code_at(self, volume: np.ndarray, bits: int, period: int,
                 taus: Sequence[int]) -> list[bytes]:
        return self._code_measured(volume, bits, period, taus)[0]

    def _code_measured(self, volume: np.ndarray, bits: int, period: int,
                       taus: Sequence[int]) -> tuple[list[bytes], list[float]]:
        """The slice streams at ``taus`` and each slice's PSNR (what rate control weighs)."""
        streams, recons, psnrs = [], [], []
        for i, image in enumerate(volume):
            offsets = reference_offsets(i, period, self.interslice)
            data, recon = self._encode_one(np.ascontiguousarray(image), bits,
                                           [recons[i - off] for off in offsets], offsets, taus[i])
            streams.append(data)
            recons.append(recon)
            psnrs.append(metrics.psnr(image, recon, bits))
        return streams, psnrs

    def _code_many(self, volume: np.ndarray, bits: int, period: int,
                   tau_lists: Sequence[Sequence[int]]) -> list[tuple[list[bytes], list[float]]]:
        """:meth:`_code_measured` at each of ``tau_lists``: independent codings of the series, so
        they run on the worker processes (:func:`.chains.run_jobs`; same bytes as in order)."""
        return chains.run_jobs(self._code_measured, [(volume, bits, period, list(taus))
                                              for taus in tau_lists],
                        [volume.size] * len(tau_lists))

    def _per_slice_psnr(self, volume: np.ndarray, bits: int, period: int
                        ) -> tuple[list[bytes], list[int]]:
        streams, recons, taus = [], [], []
        start = psnr_tau_estimate(float(self.target.value), bits)
        for i, image in enumerate(volume):
            image = np.ascontiguousarray(image)
            offsets = reference_offsets(i, period, self.interslice)
            refs = [recons[i - off] for off in offsets]
            tau, data, recon = slice_for_psnr(
                lambda t, image=image, refs=refs, offsets=offsets:
                    self._encode_one(image, bits, refs, offsets, t),
                image, bits, float(self.target.value), start, 2 if self.coarse == 1.0 else 4)
            streams.append(data)
            recons.append(recon)
            taus.append(tau)
            start = tau
        return streams, taus

    def _series_for_rate(self, volume: np.ndarray, bits: int, period: int
                         ) -> tuple[list[bytes], list[int]]:
        limit = self.target.bpp_limit(8 * volume.dtype.itemsize)
        pixels = volume.size
        sample = _sample_runs(volume.shape[0])
        coded: dict[int, tuple[list[bytes], list[float]]] = {}

        def size_bpp(streams: list[bytes], n: int) -> float:
            return 8 * sum(len(s) for s in streams) / n

        def sample_bpp(tau: int) -> float:
            if sample is None:
                return full_bpp(tau)
            streams = [s for run in sample
                       for s in self._code_at(volume[run], bits, period, [tau] * len(run))]
            return size_bpp(streams, len(streams) * volume[0].size)

        def full_bpp(tau: int) -> float:
            if tau not in coded:
                coded[tau] = self._code_measured(volume, bits, period, [tau] * volume.shape[0])
            return size_bpp(coded[tau][0], pixels)

        top = (1 << bits) - 2
        spare_core = chains.worker_count(2) > 1 and 2 * volume.size >= chains.PARALLEL_MIN_PIXELS

        def prefetch(taus: list[int]) -> None:
            missing = [t for t in dict.fromkeys(taus) if 0 <= t <= top and t not in coded]
            if spare_core and len(missing) > 1:
                coded.update(zip(missing, self._code_many(
                    volume, bits, period, [[t] * volume.shape[0] for t in missing]), strict=True))

        tau = series_for_bpp(sample_bpp, full_bpp, limit, bits, prefetch=prefetch)
        one_tau = coded[tau][0], [tau] * volume.shape[0]
        if self.allocate == "series" or volume.shape[0] == 1 or tau == 0:
            return one_tau
        return self._slices_for_rate(volume, bits, period, limit, tau, coded) or one_tau

    def _slices_for_rate(self, volume: np.ndarray, bits: int, period: int, limit: float,
                         series_tau: int, coded: dict[int, tuple[list[bytes], list[float]]]
                         ) -> tuple[list[bytes], list[int]] | None:
        """A tau per slice within the series' budget, chosen from the series coded at each
        ladder tau (:func:`.rate_control.allocate_slices`) and at the taus halfway to each
        slice's first choice's ladder neighbours, then coded for real (references now have
        other taus, so sizes move a little; the choice is redone with the budget scaled by the
        error when they overshoot or leave over 2 % unused). None when the one-tau series is
        within :data:`.rate_control.MIN_GAIN_DB` of it (mean PSNR) or no choice fits: the
        caller keeps that."""
        n = volume.shape[0]
        ladder = ladder_taus(series_tau, bits)
        missing = [t for t in ladder if t not in coded]
        coded.update(zip(missing, self._code_many(volume, bits, period,
                                                  [[t] * n for t in missing]), strict=True))
        taus = np.array([ladder] * n, dtype=np.int64)
        size = np.array([[8 * len(coded[t][0][i]) for t in ladder] for i in range(n)],
                        dtype=np.float64)
        quality = np.array([[coded[t][1][i] for t in ladder] for i in range(n)])
        allowed = limit * volume.size
        rows = np.arange(n)
        # one refinement round: every slice also tried halfway (geometrically) to the ladder
        # steps either side of its first choice, two more codings of the series
        first = allocate_slices(size, quality, allowed)
        best: tuple[float, list[bytes], list[int]] | None = None

        def consider(streams: list[bytes], psnrs: list[float], chosen: list[int]) -> float:
            """Keep a real coding of the series if it fits and is the best so far; its bits."""
            nonlocal best
            spent = 8.0 * sum(len(x) for x in streams)
            mean_db = float(np.mean(np.minimum(psnrs, PSNR_CEILING)))
            if spent <= allowed and (best is None or mean_db > best[0]):
                best = (mean_db, streams, chosen)
            return spent

        mids = [[int(t) for t in np.rint(np.sqrt(
                    taus[rows, first] * taus[rows, np.clip(first + side, 0, len(ladder) - 1)]))]
                for side in (-1, 1)]
        for mid, (streams, psnrs) in zip(mids, self._code_many(volume, bits, period, mids),
                                         strict=True):
            consider(streams, psnrs, mid)
            taus = np.column_stack([taus, mid])
            size = np.column_stack([size, [8 * len(x) for x in streams]])
            quality = np.column_stack([quality, psnrs])
        self.last_candidates = taus, size, quality
        budget, tried = allowed, set()
        for _ in range(4):  # sizes move once references change: re-choose with the error
            try:
                pick = allocate_slices(size, quality, budget)
            except FedcodecError:  # the budget shrank below every slice's cheapest candidate
                break
            chosen = [int(t) for t in taus[rows, pick]]
            if tuple(chosen) in tried:
                break
            tried.add(tuple(chosen))
            spent = consider(*self._code_measured(volume, bits, period, chosen), chosen)
            if allowed * 0.98 <= spent <= allowed:
                break
            predicted = float(size[rows, pick].sum())
            budget = predicted * allowed / spent * (0.995 if spent > allowed else 1.0)
        baseline = float(np.mean(np.minimum(coded[series_tau][1], PSNR_CEILING)))
        if best is None or best[0] < baseline + MIN_GAIN_DB or len(set(best[2])) == 1:
            return None
        return best[1], best[2]


def _sample_runs(slices: int) -> list[range] | None:
    """Runs of consecutive slices the bpp search estimates on (None: the series is small)."""
    if slices <= SERIES_SAMPLE_BLOCKS * SERIES_SAMPLE_SLICES * 2:
        return None
    starts = np.linspace(0, slices - SERIES_SAMPLE_SLICES, SERIES_SAMPLE_BLOCKS).astype(int)
    return [range(int(s), int(s) + SERIES_SAMPLE_SLICES) for s in starts]


register_mode_route("neural", "lossy", BoundedLossyCodec.name)
