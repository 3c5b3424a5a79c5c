"""Held-out evaluation of the neural codec against JPEG XL e7 and JPEG-LS (real byte counts).

    nice -n 10 python experiments/neural_eval.py --weights /tmp/fcn/w_fold0.npz --fold 1 [--tau 2]

Codes every held-out series with ``encode_volume`` (inter-slice context), decodes it and checks
the result (bit-exact, or max error <= tau), and compares total bytes with the per-slice anchors
from ``neural_baselines.py``. Ratios are total neural bytes / total anchor bytes, over all
slices and over multi-volume series (time series, diffusion).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from neural_baselines import baselines_path
from neural_dataset import load_items

from fedcodec.shared.neural.codec import NeuralCodec, stream_reach
from fedcodec.shared.neural.stream_format import COPY_MAGIC


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--fold", default="1", help="fold to evaluate (held out from training), or all")
    ap.add_argument("--tau", type=int, default=0)
    ap.add_argument("--interslice", type=int, default=1)
    ap.add_argument("--period", type=int, default=None)
    ap.add_argument("--max-slices", type=int, default=0, help="first N slices per series (0 = all)")
    ap.add_argument("--only", default="", help="comma-separated substrings of series names")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reader", default="issue", help="issue (mosaics whole) or project")
    args = ap.parse_args()
    base = json.loads(baselines_path(args.reader).read_text())
    anchor = "jxl7" if args.tau == 0 else f"jls{args.tau}"
    spec = {"tau": args.tau, "interslice": args.interslice, "weights": args.weights}
    if args.tau:
        spec["mode"] = "near-lossless"
    if args.period is not None:
        spec["period"] = args.period
    codec = NeuralCodec(**spec)
    totals = {"all": [0, 0, 0, 0], "multi": [0, 0, 0, 0]}  # neural, anchor, jls0, pixels
    rows = []
    for item in load_items(args.reader):
        if args.fold != "all" and item.fold != int(args.fold):
            continue
        if args.only and not any(k in item.name for k in args.only.split(",")):
            continue
        vol = item.volume if not args.max_slices else item.volume[: args.max_slices]
        t0 = time.perf_counter()
        streams = codec.encode_volume(vol, item.bits)
        t1 = time.perf_counter()
        out = codec.decode_volume(streams)
        t2 = time.perf_counter()
        err = int(np.abs(out.astype(np.int64) - vol).max())
        assert err <= args.tau, (item.name, err)
        n = len(vol)
        ours = sum(map(len, streams))
        ref = sum(base[item.name][anchor][:n])
        jls = sum(base[item.name]["jls0"][:n])
        for key in ("all", "multi") if item.multi_volume else ("all",):
            for j, v in enumerate((ours, ref, jls, vol.size)):
                totals[key][j] += v
        rows.append({"series": item.name, "slices": n, "bpp": 8 * ours / vol.size,
                     anchor: 8 * ref / vol.size, "ratio": ours / ref,
                     "enc_ms": (t1 - t0) / n * 1000, "dec_ms": (t2 - t1) / n * 1000,
                     "period": max(map(stream_reach, streams), default=0), "pixels": int(vol.size),
                     "bytes": ours, "anchor_bytes": ref, "multi_volume": item.multi_volume,
                     "copy_slices": sum(1 for s in streams if s[0] == COPY_MAGIC)})
        r = rows[-1]
        print(f"{r['ratio']:.3f}  {r['bpp']:.3f} bpp vs {anchor} {r[anchor]:.3f}  "
              f"enc {r['enc_ms']:.0f} dec {r['dec_ms']:.0f} ms/slice  P={r['period']}  "
              f"{n:4d} {item.name}", flush=True)
    for key, (ours, ref, jls, px) in totals.items():
        if px:
            print(f"{key:5s}: neural {8 * ours / px:.3f} bpp, {anchor} {8 * ref / px:.3f} bpp, "
                  f"ratio {ours / ref:.4f}; vs jls0 {ours / jls:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "totals": totals, "args": vars(args)},
                                        default=str, indent=1))


if __name__ == "__main__":
    main()
