"""Cost of progressive (layered) coding against single-pass coding at the final bound.

    nice -n 10 .venv/bin/python experiments/progressive_layers.py [--out DIR] [--quick]

For each source of ``lossy_rd`` (runs of consecutive slices coded as volumes) and each layer
plan, the bytes of every layer of ``neural:mode=progressive,layers=...``, the total, and the
bytes of one pass at the final bound, twice: the product (``neural:tau=FINAL``, which may code a
slice with a classical codec when that is smaller) and the learned coder alone
(``neural:tau=FINAL,fallback=0``, the coder the layers use: their ratio to it is what layering
itself costs). Every layer's decode is checked within its bound on every pixel. Refinement
layers code each pixel's bin inside the coarse layer's window (0xA7, ``window=1``); ``v1`` rows
are the previous refinement (ordinary streams against the coarse slice, ``window=0``) for
comparison.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from fedcodec.shared.codecs import get_codec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_report import report_table  # noqa: E402
from lossy_rd import load_source  # noqa: E402

PLANS = ("13-4-0", "13-4-1-0", "40-13-4-0", "13-0", "4-0", "13-4", "16-4-0", "16-4-0/v1")
"""``/v1``: the same layers with ``window=0``. 13-4-0, 13-4-1-0 and 40-13-4-0 nest (every fine
bin of 2t+1 levels partitions the coarser one); 16-4-0 does not (33 levels = 3 bins of 9 + 6)."""
QUICK_PLANS = ("13-4-0", "16-4-0/v1")


def measure(plan: str, runs) -> dict:
    layers, _, version = plan.partition("/")
    codec = get_codec(f"neural:mode=progressive,layers={layers},window={int(version != 'v1')}")
    single = get_codec(f"neural:tau={codec.layers[-1]}")
    alone = get_codec(f"neural:tau={codec.layers[-1]},fallback=0")
    layer_bytes = [0] * codec.layer_count
    single_bytes = alone_bytes = pixels = 0
    for _, run, bits in runs:
        streams = codec.encode_volume(run, bits)
        n = run.shape[0]
        for k in range(codec.layer_count):
            layer_bytes[k] += sum(map(len, streams[k * n:(k + 1) * n]))
            out = codec.decode_layers(streams[:(k + 1) * n], k + 1, partial=True)
            error = int(np.abs(out.astype(np.int64) - run).max())
            if error > codec.layers[k]:
                raise SystemExit(f"{plan}: layer {k + 1} error {error} > {codec.layers[k]}")
            for data in streams[k * n:(k + 1) * n]:
                if codec.guaranteed_error(data) != codec.layers[k]:
                    raise SystemExit(f"{plan}: layer {k + 1} records bound "
                                     f"{codec.guaranteed_error(data)}, not {codec.layers[k]}")
        single_bytes += sum(map(len, single.encode_volume(run, bits)))
        alone_bytes += sum(map(len, alone.encode_volume(run, bits)))
        pixels += run.size
    return {"layers": plan, "layer_bpp": [8 * b / pixels for b in layer_bytes],
            "total_bpp": 8 * sum(layer_bytes) / pixels, "single_bpp": 8 * single_bytes / pixels,
            "ratio": sum(layer_bytes) / single_bytes, "alone_bpp": 8 * alone_bytes / pixels,
            "ratio_alone": sum(layer_bytes) / alone_bytes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sources", default="philips-dwi,enhanced,pypi-mr")
    ap.add_argument("--plans", help=f"comma-separated (default: {','.join(PLANS)})")
    args = ap.parse_args()
    plans = args.plans.split(",") if args.plans else QUICK_PLANS if args.quick else PLANS
    rows = []
    for source in args.sources.split(","):
        runs = load_source(source, 1 if args.quick else 2, 2 if args.quick else 4)
        for plan in plans:
            row = {"source": source, **measure(plan, runs)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["| source | layers | bpp per layer | layered total | single pass at final bound | "
             "layered / single | learned coder alone, single pass | layered / alone |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['source']} | {r['layers']} | "
              f"{' + '.join(f'{b:.2f}' for b in r['layer_bpp'])} | {r['total_bpp']:.3f} | "
              f"{r['single_bpp']:.3f} | {r['ratio']:.3f} | {r['alone_bpp']:.3f} | "
              f"{r['ratio_alone']:.3f} |" for r in rows]
    report_table(lines, rows, args.out, "progressive_layers")


if __name__ == "__main__":
    main()
