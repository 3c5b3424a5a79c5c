"""Does the hybrid mode (JPEG 2000 base + learned residual) earn its place as a preview layer?

    nice -n 10 .venv/bin/python experiments/hybrid_vs_progressive.py [--out DIR] [--quick]

On the sources of ``progressive_layers`` (runs of consecutive slices), for a final bound T:

* the hybrid mode (``neural:mode=hybrid,tau=T`` until it was retired on this measurement; coded
  here with its module, as that spec did): total bytes, and its base layer alone as the preview
  (bytes of the JPEG 2000 section, PSNR at peak 2^bits-1, maximum error);
* ``neural:mode=progressive,layers=B-T`` for coarse bounds B whose 2B+1 is a multiple of 2T+1:
  layer 1 as the preview (bytes, PSNR, maximum error) and the total;
* ``neural:tau=T`` (single pass).

The preview comparison is at equal bytes: the progressive preview's PSNR interpolated (linear in
log bytes) at the hybrid base's bytes from the two layer-1 points around it.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.learned_lossy import hybrid
from fedcodec.shared.learned_lossy.codec import decode_preview
from fedcodec.shared.learned_lossy.weights import HYBRID_WEIGHTS
from fedcodec.shared.learned_lossy.stream_format import unpack as unpack_lossy
from fedcodec.shared.metrics import max_abs_error, psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_report import report_table  # noqa: E402
from lossy_rd import load_source  # noqa: E402

COARSE = (40, 121, 364, 1093)
"""2B+1 = 81, 243, 729, 2187: multiples of 9 (T=4); a bound that does not fit a source's bit
depth is left out for that source."""


def preview_quality(runs, previews) -> tuple[float, int]:
    """Mean slice PSNR (peak 2^bits-1, capped at 150) and the largest error of the previews."""
    db, err = [], 0
    for (_, run, bits), preview in zip(runs, previews, strict=True):
        for image, out in zip(run, preview, strict=True):
            db.append(min(psnr(image, out, bits), 150.0))
            err = max(err, max_abs_error(image, out))
    return float(np.mean(db)), err


def hybrid_point(runs, tau: int) -> dict:
    codec = get_codec(f"neural:mode=hybrid,tau={tau},archived=1")  # retired: decodes only
    total = base = 0
    previews = []
    for _, run, bits in runs:
        streams = [hybrid.encode_hybrid(image, bits, tau, "auto", str(HYBRID_WEIGHTS))
                   for image in run]
        for image, data in zip(run, streams, strict=True):
            if max_abs_error(image, codec.decode(data)) > tau:
                raise SystemExit(f"hybrid tau={tau}: bound broken")
        total += sum(map(len, streams))
        base += sum(len(unpack_lossy(s)[1][0]) for s in streams)
        previews.append([decode_preview(s) for s in streams])
    if any(p is None for ps in previews for p in ps):
        raise SystemExit("hybrid: a slice has no base layer (no preview)")
    db, err = preview_quality(runs, previews)
    return {"total": total, "preview_bytes": base, "preview_psnr": db, "preview_max_error": err}


def progressive_point(runs, coarse: int, tau: int) -> dict:
    codec = get_codec(f"neural:mode=progressive,layers={coarse}-{tau}")
    total = first = 0
    previews = []
    for _, run, bits in runs:
        streams = codec.encode_volume(run, bits)
        n = run.shape[0]
        if max_abs_error(run, codec.decode_volume(streams)) > tau:
            raise SystemExit(f"progressive {coarse}-{tau}: bound broken")
        total += sum(map(len, streams))
        first += sum(map(len, streams[:n]))
        previews.append(codec.decode_layers(streams[:n], 1, partial=True))
    db, err = preview_quality(runs, previews)
    return {"coarse": coarse, "total": total, "preview_bytes": first, "preview_psnr": db,
            "preview_max_error": err}


def psnr_at(points: list[dict], size: int) -> float | None:
    """Progressive preview PSNR at ``size`` bytes (linear in log bytes between two points)."""
    pts = sorted((p["preview_bytes"], p["preview_psnr"]) for p in points)
    for (b0, d0), (b1, d1) in zip(pts, pts[1:]):
        if b0 <= size <= b1:
            return d0 + (d1 - d0) * (math.log(size / b0) / math.log(b1 / b0))
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sources", default="philips-dwi,enhanced,pypi-mr")
    ap.add_argument("--tau", type=int, default=4)
    args = ap.parse_args()
    if any((2 * b + 1) % (2 * args.tau + 1) for b in COARSE):
        raise SystemExit(f"--tau {args.tau}: the coarse bounds {COARSE} do not nest")
    rows = []
    for source in args.sources.split(","):
        runs = load_source(source, 1 if args.quick else 2, 2 if args.quick else 4)
        pixels = sum(run.size for _, run, _ in runs)
        hyb = hybrid_point(runs, args.tau)
        bits = min(b for _, _, b in runs)
        prog = [progressive_point(runs, b, args.tau) for b in COARSE if b < 1 << bits]
        single = sum(len(s) for _, run, bits in runs
                     for s in get_codec(f"neural:tau={args.tau}").encode_volume(run, bits))
        row = {"source": source, "tau": args.tau, "pixels": pixels, "single": single,
               "hybrid": hyb, "progressive": prog,
               "progressive_psnr_at_hybrid_preview_bytes": psnr_at(prog, hyb["preview_bytes"])}
        rows.append(row)
        print(json.dumps(row), flush=True)

    def bpp(b: int, px: int) -> str:
        return f"{8 * b / px:.3f}"

    lines = ["| source | coder | preview bpp | preview PSNR dB | preview max error | "
             "total bpp | total / single pass |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        px, single, hyb = r["pixels"], r["single"], r["hybrid"]
        lines.append(f"| {r['source']} | hybrid tau={r['tau']} (J2K base) | "
                     f"{bpp(hyb['preview_bytes'], px)} | {hyb['preview_psnr']:.2f} | "
                     f"{hyb['preview_max_error']} | {bpp(hyb['total'], px)} | "
                     f"{hyb['total'] / single:.3f} |")
        for p in r["progressive"]:
            lines.append(f"| {r['source']} | progressive {p['coarse']}-{r['tau']} | "
                         f"{bpp(p['preview_bytes'], px)} | {p['preview_psnr']:.2f} | "
                         f"{p['preview_max_error']} | {bpp(p['total'], px)} | "
                         f"{p['total'] / single:.3f} |")
        at = r["progressive_psnr_at_hybrid_preview_bytes"]
        lines.append(f"| {r['source']} | progressive preview at the hybrid preview's bytes | "
                     f"{bpp(hyb['preview_bytes'], px)} | "
                     f"{'out of range' if at is None else f'{at:.2f}'} | | | |")
    report_table(lines, rows, args.out, "hybrid_vs_progressive")


if __name__ == "__main__":
    main()
