"""Level bounds: how much finer the coarse pyramid levels' bound should be than level 0's.

    nice -n 10 .venv/bin/python experiments/level_bounds.py [--out DIR] [--quick]
        [--sources pypi-mr,fieldmaps] [--ratios 0.85,0.7,0.55]

For each source of ``lossy_rd.py`` (MR the shipped ``neural_v1`` never saw; set
``FEDCODEC_NEURAL_WEIGHTS`` to measure another model), runs of 2 middle slices of up to 2
series, each slice coded alone by the learned coder (``neural:tau=T,centroid=1,fallback=0``,
the bounded-error coder ``neural:mode=lossy`` drives) over a ladder of bounds T, once with one
bound everywhere and once per ratio R with ``coarse=R`` (pyramid level l within
floor(T * R**l), :mod:`fedcodec.shared.neural.level_bounds`). Every stream is decoded and
checked: every pixel within T. A curve point is the mean bpp and mean PSNR (peak 2^bits - 1)
of the slices; BD-rate (``learned_lossy_rd.bd_rate``, 45-65 dB) of each ratio against one
bound. Writes ``level_bounds.md`` / ``.json`` and ``level_bounds.png`` (PSNR against bpp).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import v1_figures  # noqa: F401 - measured with neural_v1 unless the caller sets a model
from rich.progress import track

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.metrics import max_abs_error, psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_lossy_rd import bd_rate
from lossy_rd import SOURCES, WITHIN, load_source
from table_report import report_table

TAUS_12BIT = (2, 4, 7, 12, 20, 32, 50, 80, 120)
"""Bounds for 12-bit data (scaled by 2**(bits - 12) for deeper data): 45-65 dB and beyond."""


def curve(runs, ratio: float, taus: tuple[int, ...]) -> list[dict]:
    """Mean bpp / PSNR over every slice of ``runs`` at each bound, with level-bound ``ratio``."""
    points = []
    for tau in taus:
        bpp, db = [], []
        for _, run, bits in runs:
            scaled = tau << max(0, bits - 12)
            codec = get_codec(f"neural:tau={scaled},centroid=1,fallback=0,coarse={ratio:g}")
            for image in run:
                data = codec.encode(image, bits)
                out = codec.decode(data)
                if max_abs_error(image, out) > scaled:
                    raise SystemExit(f"coarse={ratio}: error above tau {scaled}")
                bpp.append(8.0 * len(data) / image.size)
                db.append(min(psnr(image, out, bits), 150.0))
        points.append({"tau": tau, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(db))})
    return points


def plot(curves: dict[str, dict[str, list[dict]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (source, by_ratio) in zip(axes[0], curves.items(), strict=True):
        for label, points in by_ratio.items():
            ax.plot([p["bpp"] for p in points], [p["psnr"] for p in points], "o-", ms=3,
                    label=label)
        ax.set_xscale("log")
        ax.set_title(source)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB, peak 2^bits-1)")
        ax.axhspan(*WITHIN, color="0.93", zorder=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "level_bounds.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--ratios", default="0.85,0.7,0.55")
    ap.add_argument("--quick", action="store_true", help="one series, one slice, 5 bounds")
    args = ap.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    taus = TAUS_12BIT[::2] if args.quick else TAUS_12BIT
    series, slices = (1, 1) if args.quick else (2, 2)
    curves: dict[str, dict[str, list[dict]]] = {}
    rows = []
    lines = ["| source | slices | " + " | ".join(f"coarse={r:g}" for r in ratios) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in ratios) + " |"]
    for source in track(args.sources.split(","), description="sources"):
        runs = load_source(source, series, slices)
        by_ratio = {"one bound": curve(runs, 1.0, taus)}
        for r in ratios:
            by_ratio[f"coarse={r:g}"] = curve(runs, r, taus)
        curves[source] = by_ratio
        bds = {r: bd_rate(by_ratio["one bound"], by_ratio[f"coarse={r:g}"], WITHIN)
               for r in ratios}
        n = sum(run.shape[0] for _, run, _ in runs)
        rows.append({"source": source, "slices": n, "bd_rate": bds, "curves": by_ratio})
        lines.append(f"| {source} | {n} | " + " | ".join(
            "n/a" if b is None else f"{b:+.1f}%" for b in bds.values()) + " |")
    lines.append("")
    lines.append("BD-rate of each level-bound ratio against one bound everywhere (45-65 dB).")
    report_table(lines, rows, args.out, "level_bounds")
    if args.out:
        plot(curves, args.out)


if __name__ == "__main__":
    main()
