"""Demo step ``compress``: the de-identified study as ``.fcz`` in every mode, learned vs classical.

Every container is written by :func:`fedcodec.client.compression.compress_study`, which decodes
and checks every pixel before it writes (bit-exact, or within τ). The learned lossless container
is decompressed back to DICOM and compared with the study pixel for pixel; the lossy one is
decompressed too, to show the PS3.3 lossy marking.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from fedcodec.client.compression import (
    DEFAULT_QUALITY,
    compress_study,
    decompress_study,
    default_codec_spec,
    quality_to_ratio,
)
from fedcodec.client.demo.capabilities import codec_problem
from fedcodec.client.demo.context import OK, DemoContext, StepOutcome
from fedcodec.client.demo.plots import plot_compression
from fedcodec.shared.dicom import read_series
from fedcodec.shared.errors import FedcodecError

TAU = 2


@dataclass(frozen=True)
class Candidate:
    mode: str
    label: str
    spec: str
    learned: bool
    quick: bool = True


def candidates(federated_weights: Path | None) -> list[Candidate]:
    lossy_default = default_codec_spec("lossy")  # the bounded-error coder at the default ratio
    ratio = quality_to_ratio(DEFAULT_QUALITY)
    listed = [
        Candidate("lossless", "jxl", "jxl", False),
        Candidate("lossless", "jpegls", "jpegls", False, quick=False),
        Candidate("lossless", "j2k", "j2k", False, quick=False),
        Candidate("lossless", "neural", "neural", True),
    ]
    if federated_weights is not None:
        listed.append(Candidate("lossless", "neural (federated)",
                                f"neural:weights={federated_weights}", True))
    listed += [
        Candidate("near-lossless", f"jpegls τ={TAU}", f"jpegls:tau={TAU}", False),
        Candidate("near-lossless", f"neural τ={TAU}", f"neural:mode=near-lossless,tau={TAU}", True),
        Candidate("lossy", f"neural ratio {ratio:g}", lossy_default, True),
        Candidate("lossy", "j2k, same bytes", SAME_BYTES_J2K, False),
        Candidate("lossy", HYPERPRIOR, HYPERPRIOR, True),
    ]
    return listed


def _psnr_text(psnr: float | None) -> str:
    return "-" if psnr is None else f"{psnr:.1f}"


def _file_name(candidate: Candidate) -> str:
    label = candidate.label.replace("τ=", "tau")
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-.") else "-" for c in label)
    return f"study-{candidate.mode}-{'-'.join(p for p in safe.split('-') if p)}.fcz"


SAME_BYTES_J2K = "j2k:ratio=<as many bytes as the learned lossy container>"
"""Placeholder: JPEG 2000 is compared at the learned coder's size. (``j2k:ratio`` counts the bits
stored, the learned coder's ``ratio`` the bits allocated, as DICOM's ratio does: equal ratios would
not mean equal bytes.)"""

HYPERPRIOR = "neural-lossy"
"""The learned hyperprior: not the lossy choice, but its latents feed the analysis step."""

LEARNED_LOSSLESS = ("neural", "neural (federated)")
"""Preferred container to store (the first available), before the classical fallback."""


def compress_modes(ctx: DemoContext) -> StepOutcome:
    study: Path = ctx.results["study_dir"]
    target = ctx.folder("compressed")
    rows, notes = [], []
    chosen = [c for c in candidates(ctx.results.get("federated_weights"))
              if c.quick or not ctx.quick]
    if ctx.results.get("federated_weights") is None:
        notes.append("neural (federated): skipped — no federated weights (the federated step "
                     "did not run)")
    containers: dict[str, Path] = {}
    width = max(len(c.label) for c in chosen)
    for candidate in chosen:
        spec = candidate.spec
        if spec == SAME_BYTES_J2K:
            learned = next((r for r in rows if r["label"].startswith("neural ratio")), None)
            if learned is None:
                continue
            spec = f"j2k:ratio={_bits_stored(study) / learned['bpp']:.4g}"
        problem = codec_problem(spec)
        if problem:
            notes.append(f"{candidate.label}: skipped — {problem}")
            ctx.console.print(f"[yellow]skipped {candidate.label}: {problem}")
            continue
        out = target / _file_name(candidate)
        start = time.perf_counter()
        report = compress_study(study, out, mode=candidate.mode,
                                tau=TAU if candidate.mode == "near-lossless" else 0,
                                codec=spec, progress=ctx.config.progress)
        seconds = time.perf_counter() - start
        worst = min((s.psnr_db for s in report.series if s.psnr_db is not None), default=None)
        rows.append({"mode": candidate.mode, "label": candidate.label, "learned": candidate.learned,
                     "bpp": report.bpp, "ratio": report.pixel_ratio, "max_error": report.max_error,
                     "psnr": worst, "bytes": report.container_bytes, "seconds": seconds,
                     "file": out})
        containers[candidate.label] = out
        ctx.console.print(f"{candidate.mode:>13} {candidate.label:<{width}} {report.bpp:6.3f} bpp  "
                          f"ratio {report.pixel_ratio:5.2f}  max err {report.max_error}  "
                          f"{seconds:5.1f} s")
    if not rows:
        raise FedcodecError("no codec could compress the demo study")

    checks = verify_round_trips(ctx, study, containers)
    stored = next((containers[k] for k in (*LEARNED_LOSSLESS, "jxl") if k in containers), None)
    ctx.results.update(compressed=containers, stored_fcz=stored,
                       lossy_fcz=containers.get(HYPERPRIOR))
    figure = plot_compression(rows, ctx.folder("report") / "compression.png")
    table = [
        "| mode | codec | bpp | ratio | max err | worst PSNR dB | .fcz bytes | s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {r['mode']} | {'**' + r['label'] + '**' if r['learned'] else r['label']} | "
          f"{r['bpp']:.3f} | {r['ratio']:.2f} | {r['max_error']} | "
          f"{_psnr_text(r['psnr'])} | {r['bytes']} | "
          f"{r['seconds']:.1f} |" for r in rows],
    ]
    section = [
        "The de-identified study compressed into one verified `.fcz` per mode and codec "
        f"(learned codecs in bold; near-lossless τ = {TAU}; bpp and ratio of the pixel streams, "
        "PSNR against the series' own value range):", "", *table, "",
        *[f"- {line}" for line in checks + notes],
    ]
    summary = f"{len(rows)} containers; " + "; ".join(_comparisons(rows))
    metrics = {f"bpp_{r['mode']}_{r['label']}": r["bpp"] for r in rows}
    return StepOutcome(OK, summary, section, [figure], metrics)


def _bits_stored(study: Path) -> int:
    series, _ = read_series(study)
    return max(s.bits_stored for s in series)


def _comparisons(rows: list[dict]) -> list[str]:
    """Learned vs classical per mode: bpp where both are exact or within one bound; for lossy,
    the error at (nearly) the same bytes."""
    best: dict[tuple[str, bool], dict] = {}
    for r in rows:
        key = (r["mode"], r["learned"])
        if r["label"] != HYPERPRIOR and (key not in best or r["bpp"] < best[key]["bpp"]):
            best[key] = r
    parts = []
    for mode in ("lossless", "near-lossless", "lossy"):
        learned, classical = best.get((mode, True)), best.get((mode, False))
        if not (learned and classical):
            continue
        if mode == "lossy":
            parts.append(f"lossy at {learned['bpp']:.2f} vs {classical['bpp']:.2f} bpp: max err "
                         f"{learned['max_error']} learned vs {classical['max_error']} JPEG 2000")
        else:
            parts.append(f"{mode} bpp {learned['bpp']:.2f} learned vs {classical['bpp']:.2f}")
    return parts


def verify_round_trips(ctx: DemoContext, study: Path, containers: dict[str, Path]) -> list[str]:
    """Decompress the learned lossless and lossy containers to DICOM and check them."""
    lines = []
    original, _ = read_series(study)
    out_root = ctx.out / "decompressed"
    lossless = next((k for k in LEARNED_LOSSLESS if k in containers), "jxl")
    lossy = next((k for k in containers if k.startswith("neural ratio")), HYPERPRIOR)
    for label, kind in ((lossless, "lossless"), (lossy, "lossy")):
        fcz = containers.get(label)
        if fcz is None:
            continue
        target = out_root / kind
        shutil.rmtree(target, ignore_errors=True)
        files = decompress_study(fcz, target, progress=ctx.config.progress)
        decoded, _ = read_series(target)
        if kind == "lossless":
            exact = all(np.array_equal(a.volume, b.volume) for a, b in zip(original, decoded))
            if not exact:
                raise FedcodecError(f"{fcz.name} did not decompress bit-exact")
            lines.append(f"`{fcz.name}` -> {len(files)} DICOM file(s) in "
                         f"`decompressed/{kind}`: every pixel equal to the study")
        else:
            header = pydicom.dcmread(files[0], stop_before_pixels=True)
            lines.append(f"`{fcz.name}` -> {len(files)} DICOM file(s) in `decompressed/{kind}`, "
                         f"LossyImageCompression = {header.get('LossyImageCompression', '')!r}, "
                         f"method {header.get('LossyImageCompressionMethod', '')!r}; "
                         f"DerivationDescription: {header.get('DerivationDescription', '')!r}")
    return lines
