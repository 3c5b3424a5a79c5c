"""The summary of a run as a rich table, for the terminal."""

from __future__ import annotations

from fedcodec.shared.benchmark.records import BenchResult, CodecSummary
from rich import box
from rich.console import Console
from rich.table import Table


def _mode(summary: CodecSummary) -> str:
    if summary.lossless:
        return "lossless"
    if summary.max_error_bound is not None:
        return f"|e|<={summary.max_error_bound}"
    return "lossy"


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_table(result: BenchResult) -> Table:
    """One row per codec: rate, distortion and speed (means per slice unless the header says)."""
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"{result.slices} slices, {result.pixels / 1e6:.1f} Mpixels",
        caption="bpp: mean per slice; bpp tot: total bits / total pixels; "
        "PSNR: mean over inexact slices (- = all exact); ms: mean per slice",
    )
    widest = max((len(s.codec) for s in result.summaries), default=5)
    table.add_column("codec", no_wrap=True, min_width=widest)
    table.add_column("mode", no_wrap=True)
    for header in ("bpp", "bpp tot", "ratio", "PSNR dB", "SSIM", "max err", "enc ms", "dec ms"):
        table.add_column(header, justify="right", no_wrap=True)
    for s in result.summaries:
        table.add_row(
            s.codec, _mode(s), f"{s.bpp:.3f}", f"{s.bpp_total:.3f}", f"{s.ratio:.2f}",
            _number(s.psnr, 2), f"{s.ssim:.5f}", str(s.max_abs_error),
            f"{s.encode_ms:.2f}", f"{s.decode_ms:.2f}",
        )
    return table


def print_summary_table(result: BenchResult, console: Console | None = None) -> None:
    """Print the table at least 110 columns wide, so no number is cut even when piped."""
    console = console or Console()
    if console.width < 110:
        console = Console(width=110, file=console.file)
    console.print(summary_table(result))
