"""Rate-distortion plots of a run: PSNR vs bpp and SSIM vs bpp, one PNG each.

Points of one codec family (``j2k``, ``j2k:ratio=8``, ``j2k:ratio=16`` ...) share a colour and the
lossy/near-lossless points are joined into a curve in order of rate. A bit-exact codec has infinite
PSNR, which no axis holds: it is drawn as a dashed vertical line at its rate with a marker at the
top edge (labelled "lossless"); in the SSIM plot it sits at SSIM = 1 on the same kind of line.
Rates are ``bpp_total`` (total bits over total pixels): the mean per slice lets a few tiny slices,
where headers dominate, pull every point to the right. Rendered with the Agg canvas directly, so
no global matplotlib state (backend, pyplot figures) is touched.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.benchmark.records import BenchResult, CodecSummary

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PLOTS = {"psnr": ("PSNR (dB)", "rd_psnr.png"), "ssim": ("SSIM", "rd_ssim.png")}


def _exact(summary: CodecSummary) -> bool:
    return summary.exact_slices == summary.slices


def _curve_labels(curve: list[CodecSummary], family: str) -> tuple[str, list[str]]:
    """The legend label and one label per point: options every point shares go to the legend
    (``neural:mode=lossy``), the ones that vary label the points (``psnr=45``), so the points of
    one curve never carry long repeated labels that overlap."""
    options = [s.codec.partition(":")[2].split(",") if ":" in s.codec else [] for s in curve]
    shared = ([o for o in options[0] if all(o in rest for rest in options[1:])]
              if len(options) > 1 else [])
    points = [",".join(o for o in opts if o not in shared) or s.codec
              for opts, s in zip(options, curve)]
    return (f"{family}:{','.join(shared)}" if shared else family), points


def _draw(axes: Axes, result: BenchResult, metric: str, colours: list[str]) -> None:
    families: dict[str, list[CodecSummary]] = defaultdict(list)
    for summary in result.summaries:
        families[summary.family].append(summary)
    for index, (family, members) in enumerate(families.items()):
        colour = colours[index % len(colours)]
        curve = sorted((s for s in members if not _exact(s)), key=lambda s: s.bpp_total)
        if curve:
            values = [getattr(s, metric) for s in curve]
            legend, labels = _curve_labels(curve, family)
            axes.plot([s.bpp_total for s in curve], values, "o-", color=colour, label=legend)
            for s, value, text in zip(curve, values, labels):
                axes.annotate(text, (s.bpp_total, value),
                              textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
        # Infinite PSNR: pin the marker to the top edge (x in data, y in axes coordinates).
        top = axes.get_xaxis_transform() if metric == "psnr" else axes.transData
        for s in (s for s in members if _exact(s)):
            axes.axvline(s.bpp_total, color=colour, linestyle="--", linewidth=1)
            axes.plot([s.bpp_total], [1.0], "^", color=colour, transform=top, clip_on=False,
                      label=f"{s.codec} (lossless" + (", PSNR = inf)" if metric == "psnr" else ")"))


def plot_rate_distortion(result: BenchResult, out_dir: Path) -> list[Path]:
    """Write ``rd_psnr.png`` and ``rd_ssim.png`` into ``out_dir``; return their paths."""
    from matplotlib import rcParams
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colours = rcParams["axes.prop_cycle"].by_key()["color"]

    paths = []
    for metric, (ylabel, filename) in PLOTS.items():
        figure = Figure(figsize=(7, 4.5), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        _draw(axes, result, metric, colours)
        axes.set_xlabel("bits per pixel (total bits / total pixels)")
        axes.set_ylabel(ylabel)
        axes.set_title(f"{ylabel.split()[0]} vs rate, {result.slices} slices")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7, loc="lower right")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)
        path = out_dir / filename
        write_atomic(path, buffer.getvalue())
        paths.append(path)
    return paths
