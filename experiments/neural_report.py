"""Merge neural_eval.py results of both folds into one held-out table (2-fold cross-validation).

    python experiments/neural_report.py /tmp/fcn/eval_f0.json /tmp/fcn/eval_f1.json [--markdown]

Each series was coded by the model trained on the *other* fold, so the merged totals are
held-out numbers over every series. Ratios are total bytes / total anchor bytes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows, totals = [], {"all": [0, 0, 0, 0], "multi": [0, 0, 0, 0]}
    anchor = None
    for path in args.files:
        data = json.loads(path.read_text())
        rows += data["rows"]
        for key, total in totals.items():
            for j in range(4):
                total[j] += data["totals"][key][j]
        tau = int(data["args"]["tau"])
        anchor = "jxl7" if tau == 0 else f"jls{tau}"
    rows.sort(key=lambda r: r["series"])
    if args.markdown:
        print(f"| series | slices | neural bpp | {anchor} bpp | ratio |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['series'][:60]} | {r['slices']} | {r['bpp']:.3f} | {r[anchor]:.3f} | "
                  f"{r['ratio']:.3f} |")
    for key, (ours, ref, jls, px) in totals.items():
        print(f"{key}: neural {8 * ours / px:.3f} bpp, {anchor} {8 * ref / px:.3f} bpp, "
              f"ratio {ours / ref:.4f} (vs jls0 {ours / jls:.4f}), {px / 1e6:.1f} Mpixels")


if __name__ == "__main__":
    main()
