"""Byte cost of ``neural:restart=K`` (an independent chain every K slices) and the chains it gives.

    nice -n 10 python experiments/neural_restart_cost.py [--restart 32] [--json OUT]

Series: the GE 3-D T1 (130 slices 256x256, references to the previous slice), a GE fMRI run
(64x64, 10-slice period: references to the previous volume and slice), the Siemens T1 FLASH
(35 slices 256x256). The learned coder alone (``fallback=0``: classical fallback slices would
start chains of their own and hide the cost), lossless. Prints bytes without and with the
restart, the relative cost, and the chain count and longest chain (what bounds a parallel
decode) of each.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
from pathlib import Path

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.neural.chains import chains
from fedcodec.shared.neural.codec import stream_reach
from fedcodec.shared.sources import read_stacks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def series() -> dict[str, tuple]:
    ge = read_stacks(DATA / "dicom" / "ge")[0]
    t1 = next(s for s in ge if s.volume.shape[1:] == (256, 256) and s.volume.shape[0] > 100)
    fmri = next(s for s in ge if s.volume.shape[1:] == (64, 64) and s.volume.shape[0] >= 100)
    siemens = read_stacks(DATA / "dicom" / "siemens" / "siemens_b")[0]
    flash = next(s for s in siemens if s.volume.shape[1:] == (256, 256))
    return {name: (s.codec_volume()[0], s.bits) for name, s in
            (("GE T1 256^2", t1), ("GE fMRI 64^2", fmri), ("Siemens FLASH 256^2", flash))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--restart", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = {}
    total = {0: 0, args.restart: 0}
    for name, (volume, bits) in series().items():
        row = {"slices": int(volume.shape[0])}
        for restart in (0, args.restart):
            streams = get_codec(f"neural:fallback=0,restart={restart}").encode_volume(volume, bits)
            spans = chains([i - stream_reach(s) for i, s in enumerate(streams)])
            row[restart] = {"bytes": sum(map(len, streams)), "chains": len(spans),
                            "longest": max(map(len, spans))}
            total[restart] += row[restart]["bytes"]
        row["cost"] = row[args.restart]["bytes"] / row[0]["bytes"] - 1
        out[name] = row
        print(f"{name}: {row['slices']} slices; restart=0: {row[0]['bytes']} bytes, "
              f"{row[0]['chains']} chains (longest {row[0]['longest']}); "
              f"restart={args.restart}: {row[args.restart]['bytes']} bytes "
              f"({100 * row['cost']:+.2f} %), {row[args.restart]['chains']} chains "
              f"(longest {row[args.restart]['longest']})", flush=True)
    print(f"all: {100 * (total[args.restart] / total[0] - 1):+.2f} %")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
