"""Demo step ``benchmark``: every codec (classical and learned) on the embedded MRI."""

from __future__ import annotations

from fedcodec.client.demo.capabilities import codec_problem
from fedcodec.client.demo.context import OK, DemoContext, StepOutcome
from fedcodec.shared.benchmark import (
    DEFAULT_CODECS,
    LOSSY_POINTS,
    print_summary_table,
    run_benchmark,
    write_report,
)
from fedcodec.shared.demo_data import demo_stacks

LEARNED = ["neural", "neural:mode=near-lossless,tau=2", "neural:mode=lossy,psnr=50", "neural-lossy"]
"""The quick demo runs the first two; the full one adds the default lossy codec at 50 dB and the
hyperprior (the latent source for analysis)."""
QUICK_CODECS = ["jxl", "jpegls", "jpegls:tau=2", "j2k:ratio=16", "jxl:distance=1"]
QUICK_SLICES, QUICK_MAX_SIDE = 3, 128


def benchmark_codecs(ctx: DemoContext) -> tuple[list[str], list[str]]:
    """(codecs to run, skip notes): classical always, learned ones when they work here."""
    classical = QUICK_CODECS if ctx.quick else [*DEFAULT_CODECS, *LOSSY_POINTS]
    learned, notes = [], []
    for spec in LEARNED[:2] if ctx.quick else LEARNED:
        problem = codec_problem(spec)
        if problem:
            notes.append(f"skipped {spec}: {problem}")
        else:
            learned.append(spec)
    return [*classical, *learned], notes


def run_codec_benchmark(ctx: DemoContext) -> StepOutcome:
    stacks, _ = demo_stacks()
    if ctx.quick:
        stacks = [s.head(QUICK_SLICES) for s in stacks if max(s.volume.shape[1:]) <= QUICK_MAX_SIDE]
    codecs, notes = benchmark_codecs(ctx)
    for note in notes:
        ctx.console.print(f"[yellow]{note}")
    slices = sum(s.volume.shape[0] for s in stacks)
    ctx.console.print(f"{len(stacks)} stacks, {slices} slices from pydicom-data, pydicom and dipy; "
                      f"{len(codecs)} codecs")
    result = run_benchmark(stacks, codecs, progress=ctx.config.progress)
    print_summary_table(result, ctx.console)
    target = ctx.folder("benchmark")
    written = write_report(result, target)
    ctx.results["benchmark"] = result
    rows = [f"| `{s.codec}` | {s.mode} | {s.bpp_total:.3f} | {s.ratio:.2f} | "
            f"{'inf' if s.psnr is None else f'{s.psnr:.2f}'} | {s.max_abs_error} | "
            f"{s.encode_ms:.2f} | {s.decode_ms:.2f} |" for s in result.summaries]
    section = [
        f"{len(stacks)} embedded stacks, {slices} slices, {result.pixels / 1e6:.2f} Mpixel; every "
        "lossless slice checked bit-exact and every τ bound checked on every pixel "
        "(`benchmark/results.csv` has every slice).", "",
        "| codec | mode | bpp (total) | ratio | PSNR dB | max err | enc ms | dec ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |", *rows,
        *([""] + [f"- {n}" for n in notes] if notes else []),
    ]
    best = min((s for s in result.summaries if s.lossless), key=lambda s: s.bpp_total, default=None)
    summary = f"{len(codecs)} codecs x {slices} slices" + (
        f"; best lossless {best.codec} {best.bpp_total:.3f} bpp" if best else "")
    figures = [p for p in written if p.suffix == ".png"]
    metrics = {f"bpp_{s.codec}": s.bpp_total for s in result.summaries}
    return StepOutcome(OK, summary, section, figures, metrics)
