"""How many decoded pixels a mean correction should weigh: least squares on the raw pixels, then
the codec with and without wide corrections.

    nice -n 10 .venv/bin/python experiments/mean_fit_taps.py [--out DIR] [--sources pypi-mr]

Part 1 (no model): for the finest pyramid level of each slice, each group (B, C, D) predicted
by least squares from its known pixels: the network's own 12 or 16 neighbours, then every known
pixel within Chebyshev radius 3, 5, 7 and 9 (plus a constant). The squared error left, against
the network's neighbourhood: what a wider linear predictor can still explain. Scanners
reconstruct many matrices by zero-filling k-space (a sinc interpolation), which a 12-16-pixel
neighbourhood does not capture.

Part 2 (the codec, learned coder alone, ``neural:tau=T,fallback=0``): bytes with the encoder
choosing among ``mean_fit.tap_counts`` (the network's neighbourhood and radius 3, 4, 5), against
the network's neighbourhood only (the corrections before wide taps), every stream decoded and
checked. Set ``FEDCODEC_NEURAL_WEIGHTS`` to a model that never saw the sources.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.neural import mean_fit
from fedcodec.shared.neural.geometry import GROUPS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lossy_rd import SOURCES, load_source  # noqa: E402
from table_report import report_table  # noqa: E402

RADII = (3, 5, 7, 9)


def known_within(group, radius: int) -> list[tuple[int, int]]:
    """Every pixel known when ``group`` is coded, within Chebyshev ``radius``."""
    known = {(dy % 2, dx % 2) for dy, dx in group.offsets}
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if (dy, dx) != (0, 0) and (dy % 2, dx % 2) in known]


def least_squares_left(image: np.ndarray, group, taps) -> float:
    """Mean squared error of the least-squares prediction of the group's interior pixels."""
    h, w = image.shape
    margin = max(RADII)
    ys, xs = np.mgrid[group.row_phase:h:2, group.col_phase:w:2]
    keep = (ys >= margin) & (ys < h - margin) & (xs >= margin) & (xs < w - margin)
    ys, xs = ys[keep], xs[keep]
    target = image[ys, xs]
    design = np.stack([image[ys + dy, xs + dx] for dy, dx in taps] + [np.ones(ys.size)], 1)
    weights, *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(np.mean((target - design @ weights) ** 2))


def codec_bytes(runs, tau: int) -> int:
    codec = get_codec(f"neural:tau={tau},fallback=0")
    total = 0
    for name, run, bits in runs:
        streams = codec.encode_volume(run, bits)
        error = np.abs(codec.decode_volume(streams).astype(np.int64) - run).max()
        if error > tau:
            raise SystemExit(f"{name}: error {error} > {tau}")
        total += sum(map(len, streams))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sources", default="pypi-mr", help=f"of {', '.join(SOURCES)}")
    ap.add_argument("--taus", default="0,2")
    args = ap.parse_args()
    rows = []
    lines = ["| source | slice | group | " + " | ".join(f"radius {r}" for r in RADII) + " |",
             "| --- | --- | --- |" + " ---: |" * len(RADII)]
    for source in args.sources.split(","):
        runs = load_source(source, 2, 4)
        for name, run, _ in runs:
            image = run[run.shape[0] // 2].astype(np.float64)
            for group in GROUPS:
                own = least_squares_left(image, group, group.offsets)
                left = [least_squares_left(image, group, known_within(group, r)) / own
                        for r in RADII]
                rows.append({"source": source, "slice": f"{name[-12:]} {image.shape}",
                             "group": group.name, "left": left})
                lines.append(f"| {source} | {rows[-1]['slice']} | {group.name} | "
                             + " | ".join(f"{v:.3f}" for v in left) + " |")
                print(lines[-1], flush=True)
    lines += ["", "Squared error of least squares on the known pixels within each radius, "
              "over that with the network's 12 or 16 neighbours (finest level, interior).", "",
              "| source | tau | bytes, network's neighbourhood only | bytes, wide taps | "
              "wide / narrow |", "| --- | ---: | ---: | ---: | ---: |"]
    narrow_counts = mean_fit.tap_counts
    for source in args.sources.split(","):
        runs = load_source(source, 2, 4)
        for tau in (int(t) for t in args.taus.split(",")):
            wide = codec_bytes(runs, tau)
            mean_fit.tap_counts = lambda group, tau=0: (len(group.offsets),)
            try:
                narrow = codec_bytes(runs, tau)
            finally:
                mean_fit.tap_counts = narrow_counts
            rows.append({"source": source, "tau": tau, "narrow": narrow, "wide": wide})
            lines.append(f"| {source} | {tau} | {narrow} | {wide} | {wide / narrow:.4f} |")
            print(lines[-1], flush=True)
    report_table(lines, rows, args.out, "mean_fit_taps")


if __name__ == "__main__":
    main()
