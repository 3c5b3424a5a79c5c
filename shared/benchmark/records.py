"""What one benchmark run measured: a record per (codec, slice) and a summary per codec.

Conventions (they are also the results-file conventions):

- ``bpp`` = 8 * stream bytes / pixels of the slice; the summary's ``bpp`` is the mean over slices
  and ``bpp_total`` the total bits over the total pixels (slices of different sizes weigh by area).
- ``ratio`` = raw bits (pixels * real bit depth) over stream bits, per slice; the summary's
  ``ratio`` is the aggregate (total raw bits over total stream bits), which a few near-empty slices
  cannot dominate.
- ``psnr`` uses the peak of the real bit depth (2**bits - 1) and is ``inf`` for a bit-exact slice.
  The summary's ``psnr`` is the mean over slices that are *not* exact (``None`` when every slice is
  exact, i.e. lossless), and ``exact_slices`` counts the others, so a lossy codec that happens to
  reproduce blank slices exactly does not report an infinite mean.
- ``ssim`` / ``ms_ssim`` (:mod:`fedcodec.shared.metrics`: real bit depth, MS-SSIM with as many of
  its five scales as the slice holds) are 1.0 for exact slices; summary values are means.
- ``max_abs_error``: per slice, and the summary holds the maximum over all slices (not a mean: it
  is the figure the bound is checked against).
- ``encode_ms`` / ``decode_ms``: per slice (see :func:`fedcodec.shared.benchmark.run_benchmark` for
  how time is attributed); the summary holds the mean per slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fedcodec.shared.codecs.base import parse_codec_spec


@dataclass(frozen=True)
class SliceRecord:
    """One codec on one slice."""

    codec: str
    slice_id: str
    mode: str
    lossless: bool
    max_error_bound: int | None
    bits: int
    pixels: int
    bytes: int
    bpp: float
    ratio: float
    psnr: float
    ssim: float
    ms_ssim: float
    max_abs_error: int
    encode_ms: float
    decode_ms: float

    @property
    def exact(self) -> bool:
        return self.max_abs_error == 0


@dataclass(frozen=True)
class CodecSummary:
    """One codec over every slice of the run."""

    codec: str
    mode: str
    lossless: bool
    max_error_bound: int | None
    slices: int
    pixels: int
    bytes: int
    bpp: float
    bpp_total: float
    ratio: float
    psnr: float | None
    ssim: float
    ms_ssim: float
    max_abs_error: int
    exact_slices: int
    encode_ms: float
    decode_ms: float

    @property
    def family(self) -> str:
        """The codec name without parameters: ``j2k`` for ``j2k:ratio=16`` (plot curves)."""
        return parse_codec_spec(self.codec)[0]


@dataclass
class BenchResult:
    """Every record of one run, in codec order then slice order, and the per-codec summaries."""

    codecs: list[str]
    slices: int
    pixels: int
    records: list[SliceRecord] = field(default_factory=list)
    summaries: list[CodecSummary] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    """Input, fedcodec version, codec model hashes, machine, date (``bench`` fills it)."""


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _loosest_bound(records: list[SliceRecord]) -> int | None:
    """The bound that holds for every slice: a rate-controlled coder records one per slice."""
    bounds = [r.max_error_bound for r in records]
    return None if any(b is None for b in bounds) else max(bounds)  # type: ignore[type-var]


def summarise(codec: str, records: list[SliceRecord]) -> CodecSummary:
    """The summary of one codec's records (all for the same codec, at least one)."""
    first = records[0]
    total_bytes = sum(r.bytes for r in records)
    pixels = sum(r.pixels for r in records)
    raw_bits = sum(r.pixels * r.bits for r in records)
    finite_psnr = [r.psnr for r in records if math.isfinite(r.psnr)]
    return CodecSummary(
        codec=codec,
        mode=first.mode,
        lossless=first.lossless,
        max_error_bound=_loosest_bound(records),
        slices=len(records),
        pixels=pixels,
        bytes=total_bytes,
        bpp=_mean([r.bpp for r in records]),
        bpp_total=8 * total_bytes / pixels,
        ratio=raw_bits / (8 * total_bytes) if total_bytes else math.inf,
        psnr=_mean(finite_psnr) if finite_psnr else None,
        ssim=_mean([r.ssim for r in records]),
        ms_ssim=_mean([r.ms_ssim for r in records]),
        max_abs_error=max(r.max_abs_error for r in records),
        exact_slices=sum(r.exact for r in records),
        encode_ms=_mean([r.encode_ms for r in records]),
        decode_ms=_mean([r.decode_ms for r in records]),
    )
