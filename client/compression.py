"""Compress a DICOM study into one ``.fcz`` container and decompress it back to DICOM.

``compress_study`` reads every series, codes each volume through the codec registry, and decodes
and compares every pixel *before* anything is written: a lossless run that is not bit-exact, or a
near-lossless run that exceeds tau anywhere, fails and writes nothing. ``decompress_study`` decodes
into a temporary folder beside the target and renames it into place only when every series is
written, so an interrupted run never leaves a half-written study. Lossless output keeps every
original UID; anything else is marked lossy (LossyImageCompression 01, ratio, method) with new
SOP Instance UIDs, as DICOM PS3.3 C.7.6.1.1.5 requires.

The codec is any registered spec (``--codec``); :func:`default_codec_spec` is the single place
that picks one from ``--mode``/``--tau``/``--quality`` or from a compression profile
(``--profile archive|diagnostic|preview|auto``, :mod:`fedcodec.shared.profiles`). With a profile
each series records the profile that chose its coding, in the container and (for lossy output)
in the DICOM Derivation Description; with ``auto`` series may get different codecs, which the
container records per series (format version 2). The ``roi`` profile codes a region of interest
(``roi=`` a :class:`~fedcodec.shared.learned_lossy.roi_mask.RoiSpec`) within its bound and the rest
lossily; the codec records the region in the header and the bound is verified on every ROI pixel.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from fedcodec.client.written_dicom_check import check_written_series
from fedcodec.client.coding_plan import SeriesPlan, StudyPlanner, study_plan
from fedcodec.shared.codecs import Codec, CodecMode, get_codec
from fedcodec.shared.codecs.renamed_specs import spec_as_recorded
from fedcodec.shared.container import (
    CodecInfo,
    CodedSeries,
    CodedStudy,
    Container,
    SeriesCoding,
    SeriesInfo,
    read_container,
    write_container,
)
from fedcodec.shared.container.dicom_headers import pack_datasets_with_digest, unpack_datasets
from fedcodec.shared.container.digests import pixels_sha256, require_digest
from fedcodec.shared.dicom import LossyInfo, read_series, write_series
from fedcodec.shared.dicom.series import Series, SkippedFile
from fedcodec.shared import metrics
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.learned_lossy.roi_mask import RoiSpec
from fedcodec.shared.neural.rate_control import PSNR_CEILING, LossyTarget
from fedcodec.shared.pixels import from_unsigned, to_unsigned
from fedcodec.shared.profiles import ProfileRules, SeriesFacts

MODES = ("lossless", "near-lossless", "lossy")
DEFAULT_QUALITY = 75
LEARNED_LOSSLESS = "neural"
"""The default lossless / near-lossless codec (see :func:`default_codec_spec`)."""
LEARNED_LOSSY = "neural:mode=lossy"
"""The default lossy codec: the bounded-error coder with one rate or quality target."""
LOSSY_RATIO_AT_Q100 = 4.0
LOSSY_RATIO_AT_Q1 = 100.0
DICOM_LOSSY_METHODS = {
    "jpegls": "ISO_14495_1",
    "j2k": "ISO_15444_1",
    "htj2k": "ISO_15444_15",
    "jxl": "ISO_18181_1",
}
"""DICOM defined terms for Lossy Image Compression Method (0028,2114); other codecs get
``FEDCODEC_<NAME>``."""


def quality_to_ratio(quality: int) -> float:
    """Target compression ratio for ``--quality`` 1..100: geometric from 100:1 (q=1) to 4:1 (q=100).

    4:1 is just beyond what lossless coders reach on MR (about 2.5-3.5:1), so q=100 is "lossy but
    hard to tell"; each step of ~21.5 quality points changes the ratio by about 2x (q=75 -> 9:1,
    q=50 -> 20:1, q=25 -> 46:1).
    """
    if not 1 <= quality <= 100:
        raise FedcodecError(f"--quality must be 1..100, got {quality}")
    span = LOSSY_RATIO_AT_Q1 / LOSSY_RATIO_AT_Q100
    return round(LOSSY_RATIO_AT_Q100 * span ** ((100 - quality) / 99), 1)


CONTAINER_RATIO_RULE = "uncompressed pixel bytes / whole .fcz"
EXACT_SLICE_DB = PSNR_CEILING
"""A slice coded exactly counts as this many dB in the mean slice PSNR, as in rate control."""


def container_ratio(raw_pixel_bytes: int, container_bytes: int) -> float:
    """Uncompressed stored pixel bytes over the whole container (headers, tables and all): the
    one definition ``compress`` and ``inspect`` print, computable from the header alone."""
    return raw_pixel_bytes / container_bytes if container_bytes else 0.0


def default_codec_spec(
    mode: str, tau: int = 0, quality: int | None = None, *, ratio: float | None = None,
    target: LossyTarget | None = None,
) -> str:
    """The codec ``fedcodec compress`` uses when ``--codec`` is not given: the best measured one.

    Lossless and near-lossless: the learned ``neural`` coder (held out by series on the shared
    multi-vendor data: 0.94x JPEG XL e7's bytes lossless, 0.75-0.78x JPEG-LS's at tau 1-4, every
    stream decoded bit-exactly in integer arithmetic; docs/neural-codec.md). Lossy: the same coder
    with a rate-controlled bound (``neural:mode=lossy``, docs/bounded-error-lossy.md): every pixel
    within a bound it records and verifies.

    Lossy: ``target`` (``--psnr/--bpp/--ratio/--max-error``), ``ratio`` (a profile's target
    compression ratio) or ``quality`` (mapped by :func:`quality_to_ratio`), only one. Profiles
    come through here too, so switching the default codec switches every profile with it.
    """
    check_mode_arguments(mode, tau, quality, explicit_codec=False)
    if ratio is not None and (mode != "lossy" or quality is not None or not ratio > 1):
        raise FedcodecError("a target ratio (> 1) applies to lossy mode without --quality")
    if target is not None and mode != "lossy":
        raise FedcodecError(f"--{target.kind.replace('_', '-')} applies to lossy mode, not {mode}")
    if mode == "lossless":
        return LEARNED_LOSSLESS
    if mode == "near-lossless":
        return f"{LEARNED_LOSSLESS}:tau={tau}"
    if target is not None:
        if ratio is not None or quality is not None:
            raise FedcodecError("give one lossy target: --psnr, --bpp, --ratio, --max-error or "
                                "--quality")
        return f"{LEARNED_LOSSY},{target.spec_text}"
    if ratio is None:
        ratio = quality_to_ratio(DEFAULT_QUALITY if quality is None else quality)
    return f"{LEARNED_LOSSY},ratio={ratio:g}"


def roi_codec_spec(roi_tau: int) -> str:
    """The codec an ROI profile uses (the region itself is bound per call, not in the spec)."""
    return f"neural:mode=roi,tau={roi_tau}"


def check_mode_arguments(mode: str, tau: int, quality: int | None, *, explicit_codec: bool) -> None:
    """One-line errors for option combinations that would silently mean something else."""
    if mode not in MODES:
        raise FedcodecError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "near-lossless":
        if tau < 1:
            raise FedcodecError(
                "near-lossless mode needs --tau N with N >= 1 (max error per pixel)"
            )
    elif tau != 0:
        raise FedcodecError(f"--tau only applies to near-lossless mode, not {mode}")
    if quality is not None:
        if mode != "lossy":
            raise FedcodecError(f"--quality only applies to lossy mode, not {mode}")
        if explicit_codec:
            raise FedcodecError("--quality picks the default lossy codec; with --codec, drop it")
        if not 1 <= quality <= 100:
            raise FedcodecError(f"--quality must be 1..100, got {quality}")


def _check_codec_fits_mode(codec: Codec, spec: str, mode: str, tau: int) -> None:
    if mode == "lossless" and codec.mode is not CodecMode.LOSSLESS:
        raise FedcodecError(
            f"codec {spec!r} is {codec.mode.value}; lossless mode needs a lossless codec"
        )
    if mode == "near-lossless" and codec.mode is CodecMode.LOSSY:
        raise FedcodecError(f"codec {spec!r} is lossy; near-lossless mode needs a bounded codec")
    if mode == "near-lossless" and codec.mode is CodecMode.BOUNDED and (codec.max_error or 0) > tau:
        raise FedcodecError(f"codec {spec!r} allows error {codec.max_error}, more than --tau {tau}")


def _model_hash(codec: Codec) -> str | None:
    """The weights identity a neural codec reports (``describe()`` key ``model_hash`` or
    ``model_id``, or a ``model_hash`` attribute); None for codecs without a model."""
    from fedcodec.shared.benchmark.provenance import codec_model_hash

    return codec_model_hash(codec)


@dataclass
class SeriesReport:
    """What compressing one series achieved."""

    description: str
    modality: str
    shape: tuple[int, int, int]
    raw_bytes: int
    """Stored values at Bits Allocated, as an uncompressed DICOM holds them."""
    stream_bytes: int
    max_error: int
    psnr_db: float | None
    """Peak = the series' own value range (max - min): 12-bit data in a 16-bit container would
    look ~24 dB better against ``2**bits - 1``. None when exact."""
    codec_spec: str = ""
    mode: str = ""
    tau: int = 0
    profile: str | None = None
    """The compression profile that chose this series' coding (None without ``--profile``)."""
    roi_tau: int | None = None
    roi_max_error: int | None = None
    """ROI coding: the bound and the measured max error inside the region."""
    bound: int | None = None
    """Lossy coding with a guaranteed bound (``neural:mode=lossy``): the largest per-pixel error
    its streams guarantee (verified), else None."""
    worst_slice_psnr_db: float | None = None
    """With a bound: the lowest PSNR of any slice, peak 2**bits - 1 (what ``--psnr`` targets)."""
    mean_slice_psnr_db: float | None = None
    """With a bound: the mean slice PSNR, peak 2**bits - 1, a slice coded exactly counting as
    :data:`EXACT_SLICE_DB` (what ``--bpp``/``--ratio`` maximise within their budget)."""

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def check_line(self) -> str:
        """What was verified, e.g. ``verified bit-exact``."""
        text = _check_text(self.mode, self.max_error, self.tau, self.psnr_db, self.bound,
                           self.worst_slice_psnr_db, self.mean_slice_psnr_db)
        if self.roi_tau is not None:
            text = (f"ROI verified max error {self.roi_max_error} <= {self.roi_tau}, "
                    f"outside {text}")
        return text


@dataclass
class CompressionReport:
    """The outcome of :func:`compress_study`; every number is measured on what was written."""

    output: Path
    codec_spec: str
    mode: str
    tau: int
    container_bytes: int
    source_bytes: int
    """Total size of the DICOM files the series came from."""
    series: list[SeriesReport] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    profile: str | None = None
    """What ``--profile`` asked for (a profile name or ``auto``); None with ``--mode``."""

    @property
    def mixed(self) -> bool:
        """True when series were coded differently (``--profile auto``)."""
        return len({(s.codec_spec, s.mode, s.tau) for s in self.series}) > 1

    @property
    def pixels(self) -> int:
        return sum(s.pixels for s in self.series)

    @property
    def raw_bytes(self) -> int:
        return sum(s.raw_bytes for s in self.series)

    @property
    def stream_bytes(self) -> int:
        return sum(s.stream_bytes for s in self.series)

    @property
    def max_error(self) -> int:
        return max((s.max_error for s in self.series), default=0)

    @property
    def bpp(self) -> float:
        """Bits per pixel of the coded pixel streams (comparable with the benchmark)."""
        return 8 * self.stream_bytes / self.pixels if self.pixels else 0.0

    @property
    def pixel_ratio(self) -> float:
        """Uncompressed stored values over coded pixel streams."""
        return self.raw_bytes / self.stream_bytes if self.stream_bytes else 0.0

    @property
    def file_ratio(self) -> float:
        """DICOM files read over the whole container (headers, tables and all)."""
        return self.source_bytes / self.container_bytes if self.container_bytes else 0.0

    @property
    def container_ratio(self) -> float:
        """The one container ratio ``compress`` and ``inspect`` print: :func:`container_ratio`."""
        return container_ratio(self.raw_bytes, self.container_bytes)

    def summary_lines(self) -> list[str]:
        slices = sum(s.shape[0] for s in self.series)
        profile = f"profile {self.profile}, " if self.profile else ""
        if self.mixed:
            coding = f"{profile}per series:"
        else:
            worst = min((s.psnr_db for s in self.series if s.psnr_db is not None), default=None)
            slice_psnrs = [s.worst_slice_psnr_db for s in self.series]
            means = [(s.mean_slice_psnr_db, s.shape[0]) for s in self.series]
            mean = (None if any(m is None for m, _ in means) or not slices else
                    sum(m * n for m, n in means) / slices)  # type: ignore[operator]
            check = _check_text(self.mode, self.max_error, self.tau, worst,
                                _worst_bound(s.bound for s in self.series),
                                None if None in slice_psnrs else min(slice_psnrs), mean)
            coding = f"{profile}codec {self.codec_spec} ({self.mode}, {check})"
        lines = [f"wrote {self.output}: {len(self.series)} series, {slices} slices, {coding}"]
        if self.profile:
            for s in self.series:
                name = s.description or "(no description)"
                lines.append(
                    f"  {name[:40]}: profile {s.profile}, codec {s.codec_spec} "
                    f"({s.mode}, {s.check_line()})"
                )
        lines += [
            (
                f"  pixels {_size(self.raw_bytes)} -> {_size(self.stream_bytes)}: "
                f"ratio {self.pixel_ratio:.2f}, {self.bpp:.3f} bpp"
            ),
            (
                f"  container {_size(self.container_bytes)}: container ratio "
                f"{self.container_ratio:.2f} ({CONTAINER_RATIO_RULE}); DICOM files read "
                f"{_size(self.source_bytes)}"
            ),
        ]
        lost = [s for s in self.skipped if s.image]
        if lost:
            lines.append(f"  NOT ARCHIVED (--skip-unreadable): {len(lost)} image file(s) that "
                         f"cannot be read; first: {lost[0].path.name}: {lost[0].reason}")
        others = [s for s in self.skipped if not s.image]
        if others:
            first = others[0]
            lines.append(
                f"  skipped {len(others)} file(s) with no image to archive; first: "
                f"{first.path.name}: {first.reason}"
            )
        return lines


def _worst_bound(bounds) -> int | None:  # type: ignore[no-untyped-def]
    """The loosest of per-series bounds; None if any series has none."""
    bounds = list(bounds)
    return None if not bounds or None in bounds else max(bounds)


def _check_text(mode: str, max_error: int, tau: int, psnr_db: float | None,
                bound: int | None = None, slice_psnr_db: float | None = None,
                mean_slice_psnr_db: float | None = None) -> str:
    if mode == "lossless":
        return "verified bit-exact"
    if mode == "near-lossless":  # a lossless --codec also meets --tau: say so
        return f"verified max error {max_error} <= tau {tau}" + (
            " (every pixel exact)" if max_error == 0 else "")
    if bound is not None:
        return f"verified max error {max_error} <= bound {bound}" + (
            f", worst slice PSNR {slice_psnr_db:.2f} dB"
            + (f", mean {mean_slice_psnr_db:.2f} dB" if mean_slice_psnr_db is not None else "")
            + " at peak 2^bits-1"
            if slice_psnr_db is not None and math.isfinite(slice_psnr_db) else "") + (
            f", series PSNR {psnr_db:.1f} dB over its range" if psnr_db is not None else "")
    return f"max error {max_error}" + (
        f", worst PSNR {psnr_db:.1f} dB" if psnr_db is not None else ""
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("slices"),
        TimeElapsedColumn(),
        console=console,
        # a live bar needs a terminal; elsewhere (a log, a pipe) it only left a blank line
        disable=not enabled or not console.is_terminal,
        transient=True,
    )
    with progress:
        yield progress


def compress_study(
    study_dir: Path,
    out: Path,
    *,
    mode: str | None = None,
    tau: int = 0,
    quality: int | None = None,
    codec: str | None = None,
    profile: str | None = None,
    rules: ProfileRules | None = None,
    progress: bool = True,
    roi: RoiSpec | None = None,
    target: LossyTarget | None = None,
    skip_unreadable: bool = False,
) -> CompressionReport:
    """Read every series under ``study_dir``, code, verify, and write ``out`` (atomically).

    An image file that cannot be read (damaged, or a kind fedcodec does not code) stops the
    command, since the archive would silently lack it, unless ``skip_unreadable``; files that
    are not images (reports, presentation states, DICOMDIR, text) are skipped and listed.

    Either ``mode`` (default lossless) with ``tau``/``quality``/``codec``, or ``profile``: a
    profile name from ``rules`` (default: the built-in rules) or ``auto`` to choose one per
    series from its description and kept attributes. ``roi``: the region of interest an ROI profile keeps
    within its bound (checked against every series that profile codes). ``target``: the lossy
    rate or quality target (``--psnr/--bpp/--ratio/--max-error``) of the default lossy codec.
    """
    if target is not None:
        if profile is not None or codec is not None or quality is not None:
            raise FedcodecError(f"--{target.kind.replace('_', '-')} sets the default lossy codec's "
                                "target; drop --profile, --codec and --quality")
        codec = default_codec_spec(mode or "lossy", tau, target=target)
        mode = "lossy"
    if profile is None:
        check_mode_arguments(mode or "lossless", tau, quality, explicit_codec=codec is not None)
    planner = StudyPlanner.from_options(
        default_codec_spec, mode=mode, tau=tau, quality=quality, codec=codec, profile=profile,
        rules=rules, choose_roi_spec=roi_codec_spec, has_region=roi is not None,
    )
    coders: dict[str, Codec] = {}
    if planner.fixed is not None:
        _coder_for(planner.fixed, coders)  # a bad codec fails before the study is read
    study_dir = Path(study_dir)
    if not study_dir.exists():
        raise FedcodecError(f"no such folder: {study_dir}")
    coded: list[CodedSeries] = []
    reports: list[SeriesReport] = []
    plans: list[SeriesPlan] = []
    with _progress(progress) as bar:
        reading = bar.add_task(f"reading {study_dir.name}", total=None)
        all_series, skipped = read_series(study_dir)
        bar.remove_task(reading)
        if not all_series:
            first = f"; first: {skipped[0].path.name}: {skipped[0].reason}" if skipped else ""
            raise FedcodecError(f"no DICOM series found in {study_dir}{first}")
        lost = [s for s in skipped if s.image]
        if lost and not skip_unreadable:
            raise FedcodecError(
                f"{len(lost)} image file(s) under {study_dir} cannot be read, so the archive "
                f"would lack them; first: {lost[0].path}: {lost[0].reason} (fix or remove them, "
                "or pass --skip-unreadable to archive the rest)")
        plans = [planner.plan(SeriesFacts.of_series(series)) for series in all_series]
        for plan in plans:
            _coder_for(plan, coders)
        task = bar.add_task("compressing", total=sum(s.shape[0] for s in all_series))
        with closing(_code_all_series(all_series, plans, coders, roi)) as results:
            for series, plan in zip(all_series, plans, strict=True):
                bar.update(task, description=f"coding {series.description or series.series_uid}"
                           [:48])
                coded_series, report = next(results)
                _check_headers_write_back(series, plan.mode != "lossless", len(coded))
                coded.append(coded_series)
                reports.append(report)
                bar.advance(task, series.shape[0])

    top = study_plan(plans)
    top_coder = coders[top.spec]
    if top.roi_tau is not None and roi is not None:  # same describe() as its series: version 1
        top_coder = top_coder.with_roi(roi)  # type: ignore[attr-defined]
    study = CodedStudy(
        codec=_codec_info(top.spec, top_coder,
                          _worst_bound(r.bound for r in reports if r.codec_spec == top.spec)),
        mode=top.mode,
        tau=top.tau,
        quality=top.quality,
        series=coded,
        profile=planner.profile,
    )
    written = write_container(out, study)
    sources = {Path(p) for s in all_series for p in s.source_files}
    return CompressionReport(
        output=Path(out),
        codec_spec=top.spec,
        mode=top.mode,
        tau=top.tau,
        container_bytes=written,
        source_bytes=sum(p.stat().st_size for p in sources if p.is_file()),
        series=reports,
        skipped=list(skipped),
        profile=planner.profile,
    )


def _check_headers_write_back(series: Series, lossy: bool, index: int) -> None:
    """Refuse a series whose headers ``decompress`` could not write back as readable DICOM.

    A lenient reader accepts headers (an odd VR, a malformed file meta value) that pydicom then
    cannot write, or writes as something that does not read back: such a study must fail here,
    with its name, not produce a container that never decompresses.
    """
    marker = LossyInfo(method="CHECK", ratio=1.0, description="write-back check") if lossy else None
    with tempfile.TemporaryDirectory(prefix="fedcodec-writeback-") as scratch:
        folder = Path(scratch)
        try:  # the headers as decompress will see them: through the container's header blob
            blob, raw_length, digest = pack_datasets_with_digest(series.datasets, "none")
            stored = unpack_datasets(blob, "none", raw_length, len(series.datasets),
                                     f"series {index}", digest)
            _write_decoded(dataclasses.replace(series, datasets=stored), folder, marker, index)
            check_written_series(folder, series.volume, index)
        except FedcodecError as exc:
            name = series.description or series.series_uid
            raise FedcodecError(
                f"series {name!r} cannot be stored: {exc}; nothing written"
            ) from None


def _coder_for(plan: SeriesPlan, coders: dict[str, Codec]) -> Codec:
    """The codec of ``plan`` (built once per spec), checked against the plan's promise."""
    if plan.spec not in coders:
        coder = get_codec(plan.spec)
        _check_codec_fits_mode(coder, plan.spec, plan.mode, plan.tau)
        coders[plan.spec] = coder
    return coders[plan.spec]


def _codec_info(spec: str, coder: Codec, bound: int | None = None) -> CodecInfo:
    """``bound``: the largest error a rate-controlled coder guaranteed (recorded in
    ``describe`` as ``guaranteed_max_error``; each stream's header has its own)."""
    described = coder.describe()
    if bound is not None and coder.max_error is None:
        described["guaranteed_max_error"] = bound
    return CodecInfo(spec, described, _model_hash(coder))


def _bind_roi(coder: Codec, plan: SeriesPlan, roi: RoiSpec | None, shape, name: str) -> Codec:
    """The codec configured with the region (ROI plans), after checking it fits the series."""
    if plan.roi_tau is None:
        return coder
    with_roi = getattr(coder, "with_roi", None)
    if roi is None or with_roi is None:
        raise FedcodecError(f"codec {plan.spec!r} cannot code a region of interest"
                            if roi is not None else "ROI profile without a region")
    roi.check_volume(tuple(shape), f"series {name!r}")
    return with_roi(roi)


def _roi_max_error(roi: RoiSpec, error: np.ndarray) -> int:
    masks = np.stack([roi.slice_mask(i, error.shape[1:]) for i in range(error.shape[0])])
    return int(error[masks].max(initial=0))


LOSSY_CODINGS = 10
"""About how many times a lossy target codes a series (tau search, ladder, refinements): the
weight of its pixels when deciding whether worker processes pay."""


def _code_all_series(all_series: list[Series], plans: list[SeriesPlan],
                     coders: dict[str, Codec], roi: RoiSpec | None
                     ) -> Iterator[tuple[CodedSeries, SeriesReport]]:
    """Every series coded and verified, in order: the series of a study share nothing, so they
    run on worker processes when there are free cores (``FEDCODEC_NEURAL_WORKERS``; inside a
    worker the codec then codes with one process), each result as soon as it and those before
    it are done. Same streams as coding them in order."""
    from fedcodec.shared.neural.chains import iter_jobs

    return iter_jobs(_code_series,
                     [(coders[plan.spec], plan, series, roi)
                      for series, plan in zip(all_series, plans, strict=True)],
                     [series.volume.size * (LOSSY_CODINGS if plan.mode == "lossy" else 1)
                      for series, plan in zip(all_series, plans, strict=True)])


def _code_series(
    coder: Codec, plan: SeriesPlan, series: Series, roi: RoiSpec | None = None
) -> tuple[CodedSeries, SeriesReport]:
    """Code one volume and prove the promise of ``plan.mode`` on every pixel before it is kept."""
    spec, mode, tau = plan.spec, plan.mode, plan.tau
    name = series.description or series.series_uid
    try:
        unsigned, offset = to_unsigned(series.volume, series.bits_stored, series.signed)
    except ValueError as exc:
        raise FedcodecError(f"series {name!r}: {exc}") from None
    coder = _bind_roi(coder, plan, roi, unsigned.shape, name)
    coder = coder.with_volume_layout(series.positions_per_volume)
    streams = [bytes(s) for s in coder.encode_volume(unsigned, series.bits_stored)]
    decoded = np.asarray(coder.decode_volume(streams))
    if decoded.shape != unsigned.shape:
        raise FedcodecError(
            f"codec {spec!r} failed verification on series {name!r}: decoded shape "
            f"{decoded.shape} != {unsigned.shape}; nothing written"
        )
    error = np.abs(decoded.astype(np.int32) - unsigned.astype(np.int32))
    max_error = int(error.max()) if error.size else 0
    bound = 0 if mode == "lossless" else tau if mode == "near-lossless" else None
    stream_bounds = [coder.guaranteed_error(s) for s in streams] if mode == "lossy" else []
    guaranteed = _worst_bound(stream_bounds)
    if guaranteed is not None:
        slice_errors = error.reshape(error.shape[0], -1).max(axis=1, initial=0)
        if any(int(e) > b for e, b in zip(slice_errors, stream_bounds, strict=True)):
            raise FedcodecError(
                f"codec {spec!r} failed verification on series {name!r}: a slice exceeds the "
                "bound its stream records; nothing written"
            )
    if bound is not None and max_error > bound:
        raise FedcodecError(
            f"codec {spec!r} failed verification on series {name!r}: max error {max_error} "
            f"> {bound} ({mode}); nothing written"
        )
    roi_max_error = None
    if plan.roi_tau is not None and roi is not None:
        roi_max_error = _roi_max_error(roi, error)
        if roi_max_error > plan.roi_tau:
            raise FedcodecError(
                f"codec {spec!r} failed verification on series {name!r}: max error "
                f"{roi_max_error} inside the ROI > {plan.roi_tau}; nothing written"
            )
    info = SeriesInfo.from_series(series, offset)
    psnr = None
    if max_error:
        mse = float(np.mean(error.astype(np.float64) ** 2))
        peak = max(int(unsigned.max()) - int(unsigned.min()), 1)
        psnr = float(10 * np.log10(peak * peak / mse))
    slice_db = ([] if guaranteed is None else
                [metrics.psnr(a, b, series.bits_stored) for a, b in zip(unsigned, decoded,
                                                                        strict=True)])
    report = SeriesReport(
        description=series.description,
        modality=series.modality,
        shape=tuple(int(n) for n in unsigned.shape),  # type: ignore[arg-type]
        raw_bytes=info.raw_pixel_bytes,
        stream_bytes=sum(len(s) for s in streams),
        max_error=max_error,
        psnr_db=psnr,
        codec_spec=spec,
        mode=mode,
        tau=tau,
        profile=plan.profile.name if plan.profile else None,
        roi_tau=plan.roi_tau,
        roi_max_error=roi_max_error,
        bound=guaranteed,
        worst_slice_psnr_db=None if guaranteed is None else min(slice_db, default=None),
        mean_slice_psnr_db=(None if guaranteed is None or not slice_db else
                            sum(min(d, EXACT_SLICE_DB) for d in slice_db) / len(slice_db)),
    )
    coding = SeriesCoding(_codec_info(spec, coder, guaranteed), mode, tau, plan.quality)
    lossless = coder.mode is CodecMode.LOSSLESS
    digest = _pixels_digest(_stored_values(decoded, info, lossless=lossless), info)
    coded = CodedSeries(info, series.datasets, streams, report.profile, coding, digest)
    return coded, report


def recorded_codec(info: CodecInfo) -> Codec:
    """The codec that reads the streams a container recorded with ``info`` (a spec whose
    meaning changed since is read as it was meant then, see
    :mod:`fedcodec.shared.codecs.renamed_specs`)."""
    return get_codec(spec_as_recorded(info.spec, info.describe))


def decompress_study(fcz: Path, out_dir: Path, *, progress: bool = False,
                     layer: int | None = None) -> list[Path]:
    """Decode ``fcz`` into DICOM files under ``out_dir`` (one subfolder per series).

    ``out_dir`` must not exist or be empty. Returns the written files at their final paths.
    ``layer`` (progressive containers, ``neural:mode=progressive``): decode only the first
    ``layer`` layers (a preview within that layer's bound, marked lossy unless it is exact).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FedcodecError(f"output {out_dir} exists and is not an empty folder")
    container = read_container(fcz)
    codings = [container.header.coding_of(i) for i in range(len(container.series))]
    coders: dict[str, Codec] = {}
    for coding in [container.header.coding, *codings]:  # every decoder ready before writing
        if coding.codec.spec not in coders:
            coders[coding.codec.spec] = recorded_codec(coding.codec)
            _check_model(coding.codec, coders[coding.codec.spec])
    if layer is not None:
        for coding in codings:
            _check_layer(coders[coding.codec.spec], coding.codec.spec, layer)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        written: list[Path] = []
        with _progress(progress) as bar:
            slices = sum(entry.info.shape[0] for entry in container.series)
            task = bar.add_task("decompressing", total=slices)
            ahead: dict[int, np.ndarray] = {}
            for index, entry in enumerate(container.series):
                spec = codings[index].codec.spec
                coder = coders[spec]
                streams = _layer_streams(coder, container.pixel_streams(index), layer)
                if layer is None and index not in ahead:
                    ahead = _decode_ahead(container, [c.codec.spec for c in codings], coder, index)
                series = _decode_series(container, coder, index, streams, layer,
                                        ahead.pop(index, None))
                folder = temp / _series_folder_name(index, entry.info.description)
                bound = _worst_bound(coder.guaranteed_error(s)
                                     for s in streams[-entry.info.shape[0]:])
                lossy = coder.mode is not CodecMode.LOSSLESS or bool(bound)
                info = (_lossy_info(container, index, spec, entry.profile, bound,
                                    sum(map(len, streams)) if layer is not None else None)
                        if lossy else None)
                written.extend(_write_decoded(series, folder, info, index))
                check_written_series(folder, series.volume, index)
                bar.advance(task, entry.info.shape[0])
        mask = os.umask(0)
        os.umask(mask)
        temp.chmod(0o777 & ~mask)  # mkdtemp's 0700 -> what mkdir gives
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); rename needs the name free
        temp.rename(out_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return [out_dir / p.relative_to(temp) for p in written]


def _write_decoded(series: Series, folder: Path, lossy: LossyInfo | None, index: int) -> list[Path]:
    """``write_series``, with pydicom's own exceptions on odd header values made one line."""
    try:
        return write_series(series, folder, lossy=lossy)
    except FedcodecError:
        raise
    except OSError as exc:
        if not str(exc).startswith("With tag"):  # the disk, not a value pydicom re-raised
            raise
        raise CorruptDataError(
            f"series {index}: its DICOM headers cannot be written: {str(exc).splitlines()[0][:160]}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on malformed values
        reason = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise CorruptDataError(
            f"series {index}: its DICOM headers cannot be written: {type(exc).__name__}: {reason}"
        ) from None


def _shipped_name(model_hash: str) -> str:
    """`` (shipped neural_v1)`` when a model id is one of the shipped ``neural`` models."""
    from fedcodec.shared.neural.weights import shipped_name

    try:
        name = shipped_name(bytes.fromhex(model_hash))
    except ValueError:  # a hash of another codec's model, not a neural model id
        return ""
    return f" (shipped {name})" if name else ""


def _check_model(codec: CodecInfo, coder: Codec) -> None:
    """The container's model must be the coder's, or one the coder decodes with (a shipped
    model that was the default when the container was written)."""
    expected = codec.model_hash
    actual = _model_hash(coder)
    decodes = getattr(coder, "decodes_model", None)
    if expected is not None and actual != expected and not (decodes and decodes(expected)):
        raise FedcodecError(
            f"container was coded with model {expected[:16]}, but codec "
            f"{codec.spec!r} here has model {str(actual)[:16]}"
        )


def _check_layer(coder: Codec, spec: str, layer: int) -> None:
    """One-line error unless ``coder`` is layered and has ``layer``."""
    count = getattr(coder, "layer_count", None)
    if count is None:
        raise FedcodecError(f"--layer needs a progressive container (neural:mode=progressive); "
                            f"this one is coded with {spec!r}")
    if not 1 <= layer <= count:
        raise FedcodecError(f"--layer must be 1..{count} for {spec!r}, not {layer}")


def _layer_streams(coder: Codec, streams: list[bytes], layer: int | None) -> list[bytes]:
    """The streams a decode up to ``layer`` reads (all of them without a layer)."""
    if layer is None:
        return streams
    return coder.layer_streams(streams, layer)  # type: ignore[attr-defined]


AHEAD_PIXELS = 1 << 27
"""Series decoded together hold at most about this many pixels (256 MiB as uint16)."""


def _decode_ahead(container: Container, specs: list[str], coder: Codec,
                  first: int) -> dict[int, np.ndarray]:
    """Series ``first``, ``first + 1``, ... (same codec, up to ``AHEAD_PIXELS``) decoded together
    when the codec decodes several volumes at once (``decode_volumes``: the neural coder runs
    their independent chains on every core); empty otherwise, so the caller decodes in turn."""
    decode_volumes = getattr(coder, "decode_volumes", None)
    if decode_volumes is None:
        return {}
    batch, pixels = [], 0
    for index in range(first, len(specs)):
        size = int(np.prod(container.series[index].info.shape))
        if specs[index] != specs[first] or (batch and pixels + size > AHEAD_PIXELS):
            break
        batch.append(index)
        pixels += size
    if len(batch) < 2:
        return {}
    try:
        decoded = decode_volumes([container.pixel_streams(i) for i in batch])
    except FedcodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - codec libraries raise their own types
        raise CorruptDataError(f"series {first}-{batch[-1]}: cannot decode their streams: "
                               f"{exc}") from exc
    return dict(zip(batch, decoded, strict=True))


def _decode_series(container: Container, coder: Codec, index: int,
                   streams: list[bytes] | None = None, layer: int | None = None,
                   decoded: np.ndarray | None = None) -> Series:
    """Decode one series of the container back to stored values around its headers
    (``streams``/``layer``: only the first layers of a progressive series; ``decoded``: the
    series already decoded by :func:`_decode_ahead`)."""
    info = container.series[index].info
    if streams is None:
        streams = container.pixel_streams(index)
    try:
        if decoded is not None:
            pass
        elif layer is None:
            decoded = np.asarray(coder.decode_volume(streams))
        else:
            decoded = np.asarray(coder.decode_layers(streams, layer,  # type: ignore[attr-defined]
                                                     partial=True))
    except FedcodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - codec libraries raise their own types
        raise CorruptDataError(f"series {index}: cannot decode its streams: {exc}") from exc
    if decoded.shape != info.shape:
        raise CorruptDataError(
            f"series {index}: decoded shape {decoded.shape}, header says {info.shape}"
        )
    lossless = coder.mode is CodecMode.LOSSLESS
    top = (1 << info.bits_stored) - 1
    if lossless and decoded.size and (decoded.min() < 0 or decoded.max() > top):
        raise CorruptDataError(f"series {index}: decoded values exceed {info.bits_stored} bits")
    values = _stored_values(decoded, info, lossless=lossless)
    preview = layer is not None and layer < getattr(coder, "layer_count", layer)
    if not preview:  # the digest is of the final layer; a preview layer has its stream CRCs
        require_digest(container.series[index].pixels_sha256, _pixels_digest(values, info),
                       f"series {index}: the decoded pixels and their description")
    datasets = container.datasets(index)
    return Series(
        series_uid=info.series_uid,
        study_uid=info.study_uid,
        patient_id=info.patient_id,
        description=info.description,
        modality=info.modality,
        volume=values,
        bits_stored=info.bits_stored,
        signed=info.signed,
        rescale_slope=info.rescale_slope,
        rescale_intercept=info.rescale_intercept,
        datasets=datasets,
        # The container keeps no file names (they may carry identity): number the files.
        source_files=[Path(f"{n + 1:04d}.dcm") for n in range(len(datasets))],
        slice_sources=list(info.slice_sources),
        part=info.part,
        mosaic_tiles=list(info.mosaic_tiles),
        slice_rescale=list(info.slice_rescale),
        bits_allocated=info.bits_allocated,
    )


def _pixels_digest(values: np.ndarray, info: SeriesInfo) -> str:
    """What the container records of a series: its stored values and every header field they
    are written with (``compress`` and ``decompress`` compute it from the same SeriesInfo)."""
    described = json.dumps(dataclasses.asdict(info), sort_keys=True, separators=(",", ":"))
    return pixels_sha256(values, described)


def _stored_values(decoded: np.ndarray, info: SeriesInfo, *, lossless: bool) -> np.ndarray:
    """What a decoded volume becomes in DICOM: clipped to the bit depth (a lossy decoder may
    overshoot it), then shifted back to signed values. ``compress`` records the digest of this,
    ``decompress`` recomputes it."""
    if not lossless:
        decoded = np.clip(decoded, 0, (1 << info.bits_stored) - 1)
    return from_unsigned(decoded, info.offset, info.signed).astype(info.dtype, copy=False)


def _lossy_info(
    container: Container, index: int, spec: str, profile: str | None = None,
    bound: int | None = None, coded_bytes: int | None = None,
) -> LossyInfo:
    """Ratio = uncompressed stored bits / coded bits of this series, as DICOM defines it.

    The Derivation Description names the codec and, when one chose it, the compression profile
    (``profile preview``), so a reader of the DICOM file sees why it is lossy; with a bound the
    streams guarantee (``bound``, read from their headers), it states it in stored values.
    ``coded_bytes``: the bytes the image was actually decoded from, when that is less than the
    series holds (a progressive preview reads only its first layers: its ratio is theirs).
    """
    info = container.series[index].info
    coded = container.pixel_stream_bytes(index) if coded_bytes is None else coded_bytes
    ratio = info.raw_pixel_bytes / max(coded, 1)
    roi = _roi_text(container.header.coding_of(index).codec.describe)
    name = spec.partition(":")[0]
    method = DICOM_LOSSY_METHODS.get(name) or re.sub(r"[^A-Z0-9_]", "_", f"FEDCODEC_{name.upper()}")
    return LossyInfo(
        method=method[:16],
        ratio=ratio,
        description=f"lossy compression {method[:16]} ratio {ratio:.2f}:1 (fedcodec codec {spec}"
        + (f", profile {profile}" if profile else "") + (f", {roi}" if roi else "")
        + (f", every pixel within {bound} of the original stored value" if bound else "") + ")",
    )


def _roi_text(described: dict) -> str:
    """``ROI box 40,60,200,180 lossless, outside lossy`` from a codec's describe(), or ''."""
    region = described.get("roi")
    if not isinstance(region, dict):
        return ""
    tau = described.get("roi_tau", 0)
    where = {"box": lambda r: "box " + ",".join(str(v) for v in r.get("box", [])
                                                + r.get("slices", [])),
             "centre": lambda r: f"centred box {r.get('fraction')}",
             "mask": lambda r: "mask " + "x".join(str(v) for v in r.get("shape", []))}
    kind = where.get(str(region.get("kind")), lambda r: str(r.get("kind")))(region)
    inside = "lossless" if not tau else f"within {tau}"
    return (f"ROI {kind} {inside} (sha256 {str(region.get('sha256', ''))[:12]}), "
            "outside lossy")


def _series_folder_name(index: int, description: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", description).strip("._")[:48]
    return f"{index + 1:03d}_{slug}" if slug else f"{index + 1:03d}"


@dataclass
class ContainerSummary:
    """What ``fedcodec inspect`` prints: the header and sizes, no pixels."""

    path: Path
    version: int
    size: int
    codec_spec: str
    codec_describe: dict
    model_hash: str | None
    mode: str
    tau: int
    quality: int | None
    writer: str
    series: list[dict]
    stream_count: int
    verified: bool
    """Every stream's CRC checked (always, since plain ``inspect`` does it)."""
    profile: str | None = None
    decoded: bool = False
    """``--verify``: every series decoded, digests checked, DICOM written and read back."""

    def lines(self) -> list[str]:
        raw = sum(s["raw_bytes"] for s in self.series)
        coded = sum(s["stream_bytes"] for s in self.series)
        pixels = sum(s["pixels"] for s in self.series)
        lines = [
            f"{self.path}: .fcz version {self.version}, {_size(self.size)}, "
            f"{len(self.series)} series, {self.stream_count} streams"
            + (", all checksums verified" if self.verified else "")
            + (", every series decoded and checked" if self.decoded else ""),
            f"codec {self.codec_spec} ({self.mode}"
            + (f", tau {self.tau}" if self.mode == "near-lossless" else "")
            + (f", quality {self.quality}" if self.quality is not None else "")
            + (f", every pixel within {self.codec_describe['guaranteed_max_error']}"
               if self.codec_describe.get("guaranteed_max_error") is not None else "")
            + ")"
            + (f", model {self.model_hash[:16]}{_shipped_name(self.model_hash)}"
               if self.model_hash else "")
            + (f", written by {self.writer}" if self.writer else ""),
        ]
        if self.profile:
            mixed = len({s["codec_spec"] for s in self.series}) > 1
            lines.append(
                f"profile {self.profile}"
                + ("; series coded differently (the line above is the least faithful)"
                   if mixed else "")
            )
        if pixels:
            lines.append(
                f"pixels {_size(raw)} -> {_size(coded)}: ratio {raw / coded if coded else 0:.2f}, "
                f"{8 * coded / pixels:.3f} bpp; container ratio "
                f"{container_ratio(raw, self.size):.2f} "
                f"({CONTAINER_RATIO_RULE})"
            )
        row = "{:>3}  {:<28}  {:<4}  {:<14}  {:<9}  {:>7}  {:>10}  {:>6}  {:>6}"
        with_profile = any(s["profile"] for s in self.series)
        if with_profile:
            row += "  {:<10}  {}"
        lines.append(row.format("#", "series", "mod", "shape", "bits", "streams", "coded", "bpp",
                                "ratio", "profile", "codec"))
        for index, s in enumerate(self.series, 1):
            name = s["description"] or "-"
            lines.append(
                row.format(
                    index,
                    name if len(name) <= 28 else name[:27] + "~",
                    s["modality"][:4],
                    "x".join(str(n) for n in s["shape"]),
                    f"{s['bits_stored']}{' signed' if s['signed'] else ''}",
                    s["streams"],
                    _size(s["stream_bytes"]),
                    f"{s['bpp']:.3f}",
                    f"{s['ratio']:.2f}",
                    s["profile"] or "-",
                    s["codec_spec"],
                )
            )
        for index, s in enumerate(self.series, 1):
            if s.get("roi"):
                lines.append(f"{index:>3}  {s['roi']}")
        return lines


def inspect_container(fcz: Path, *, verify: bool = False) -> ContainerSummary:
    """Summarise a container after checking its framing and every stream's CRC.

    Every byte of an ``.fcz`` is under a CRC, so reading all streams (cheap next to decoding)
    is what it takes for randomly damaged files to be reported rather than described. With
    ``verify`` every series is also decompressed into a temporary folder exactly as
    ``decompress`` does: each stream decoded, the recorded SHA-256 digests compared, every
    DICOM file written and read back.
    """
    container = read_container(fcz)
    container.verify()
    if verify:
        with tempfile.TemporaryDirectory(prefix="fedcodec-verify-") as scratch:
            decompress_study(fcz, Path(scratch) / "study")
    header = container.header
    series = []
    for index, entry in enumerate(container.series):
        info = entry.info
        coded = container.pixel_stream_bytes(index)
        coding = header.coding_of(index)
        series.append(
            {
                "profile": entry.profile,
                "codec_spec": coding.codec.spec,
                "mode": coding.mode,
                "tau": coding.tau,
                "roi": _roi_text(coding.codec.describe),
                "description": info.description,
                "modality": info.modality,
                "shape": list(info.shape),
                "bits_stored": info.bits_stored,
                "signed": info.signed,
                "streams": entry.stream_count,
                "datasets": entry.headers.datasets,
                "pixels": info.pixel_count,
                "raw_bytes": info.raw_pixel_bytes,
                "stream_bytes": coded,
                "header_bytes": container.stream_length(entry.headers.stream),
                "bpp": 8 * coded / info.pixel_count,
                "ratio": info.raw_pixel_bytes / coded if coded else 0.0,
            }
        )
    return ContainerSummary(
        path=Path(fcz),
        version=container.version,
        size=container.size,
        codec_spec=header.codec.spec,
        codec_describe=header.codec.describe,
        model_hash=header.codec.model_hash,
        mode=header.mode,
        tau=header.tau,
        quality=header.quality,
        writer=header.writer,
        series=series,
        stream_count=container.stream_count,
        verified=True,
        decoded=verify,
        profile=header.profile,
    )
