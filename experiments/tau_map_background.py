"""Does a larger bound in background air pay, for a PSNR target? Measured with the per-pixel tau
map the slice coder already has.

    nice -n 10 .venv/bin/python experiments/tau_map_background.py [--out DIR] [--quick]

For each slice: background = 8x8 blocks whose mean is below ``--threshold`` of the slice's 99th
percentile (air, noise floor); the map gives background ``factor x tau`` and anatomy ``tau``.
Both curves (uniform tau; mapped) are swept over tau and compared by BD-rate at equal mean PSNR
(``lossy_rd``'s slices and ``learned_lossy_rd.bd_rate``). The map is *not* charged for its side
information (a decoder would need it), so the comparison favours the map.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from fedcodec.shared.metrics import psnr
from fedcodec.shared.neural.codec import load_weights
from fedcodec.shared.neural.slice_coder import SliceParams, decode_slice, encode_slice
from fedcodec.shared.neural.weights import shipped_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_report import report_table  # noqa: E402
from learned_lossy_rd import bd_rate  # noqa: E402
from lossy_rd import load_source  # noqa: E402

BLOCK = 8


def background(image: np.ndarray, threshold: float) -> np.ndarray:
    rows, cols = image.shape
    r, c = -(-rows // BLOCK) * BLOCK, -(-cols // BLOCK) * BLOCK
    padded = np.pad(image.astype(np.float64), ((0, r - rows), (0, c - cols)), mode="edge")
    means = padded.reshape(r // BLOCK, BLOCK, c // BLOCK, BLOCK).mean(axis=(1, 3))
    low = means < threshold * np.percentile(image, 99)
    return np.kron(low, np.ones((BLOCK, BLOCK), bool))[:rows, :cols]


def point(images, bits, tau: int, factor: int, threshold: float) -> dict:
    weights, models = load_weights(str(shipped_path("neural_v1")))
    sizes, values = [], []
    for image in images:
        tau_map = np.full(image.shape, tau, np.int32)
        if factor > 1:
            tau_map[background(image, threshold)] = min(factor * tau, (1 << bits) - 2)
        words, _ = encode_slice(image, SliceParams(bits, tau), [], weights, models, tau_map)
        out = decode_slice(words, image.shape, SliceParams(bits, tau), [], weights, models,
                           tau_map)
        sizes.append(32 * words.size / image.size)
        values.append(psnr(image, out, bits))
    return {"tau": tau, "factor": factor, "bpp": float(np.mean(sizes)),
            "psnr": float(np.mean(values))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threshold", type=float, default=0.05)
    ap.add_argument("--sources", default="philips-dwi,enhanced,pypi-mr")
    args = ap.parse_args()
    taus = (2, 6, 16, 40) if args.quick else (1, 2, 4, 8, 16, 32, 64)
    rows = []
    for source in args.sources.split(","):
        runs = load_source(source, 1 if args.quick else 2, 2)
        images = [np.ascontiguousarray(s) for _, run, _ in runs for s in run]
        bits = runs[0][2]
        share = float(np.mean([background(i, args.threshold).mean() for i in images]))
        curves = {f: [point(images, bits, t, f, args.threshold) for t in taus] for f in (1, 2, 4)}
        row = {"source": source, "background_share": share,
               "bd_rate_x2": bd_rate(curves[1], curves[2], (45.0, 65.0)),
               "bd_rate_x4": bd_rate(curves[1], curves[4], (45.0, 65.0)), "curves": curves}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.1f}%"

    lines = ["| source | background share | BD-rate, background tau x2 | x4 |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['source']} | {r['background_share']:.2f} | {fmt(r['bd_rate_x2'])} | "
              f"{fmt(r['bd_rate_x4'])} |" for r in rows]
    report_table(lines, rows, args.out, "tau_map_background")


if __name__ == "__main__":
    main()
