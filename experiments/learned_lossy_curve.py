"""Print the learned lossy codec's training curve (from train's JSON-lines log) as a table.

    ../.venv/bin/python learned_lossy_curve.py /tmp/fll/curve.jsonl --every 250

Values are running means over each log interval of training crops (noisy rate, normalised
PSNR = 10 log10(1 / MSE) on [0, 1]-normalised pixels), per quality.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log", type=Path)
    ap.add_argument("--every", type=int, default=250)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    print("| step | q1 bpp / dB | q5 bpp / dB | q8 bpp / dB | loss |")
    print("| ---: | --- | --- | --- | ---: |")
    last = None
    for row in rows:
        if last is not None and row["step"] // args.every == last // args.every and row is not rows[-1]:
            continue
        last = row["step"]
        cells = []
        for q in (1, 5, 8):
            b, p = row.get(f"bpp_q{q}"), row.get(f"psnr_q{q}")
            cells.append("-" if b is None else f"{b:.3f} / {p:.1f}")
        print(f"| {row['step']} | " + " | ".join(cells) + f" | {row['loss']:.1f} |")


if __name__ == "__main__":
    main()
