"""Rate-distortion of the learned lossy codec vs JPEG 2000, HTJ2K, JPEG XL on held-out series,
and the hybrid mode vs JPEG-LS near-lossless.

    cd experiments && nice -n 10 ../.venv/bin/python learned_lossy_rd.py --out /tmp/fll/rd.json

Held-out = fold 1 of neural_dataset.py (split by series; the shipped weights saw fold 0 only).
One middle slice per held-out series (``--every`` thins the list). PSNR / SSIM use the real bit
depth (fedcodec.shared.metrics). Points are averaged over slices (mean bpp, mean PSNR); BD-rate
(Bjøntegaard, cubic fit of log-rate over PSNR, overlapping PSNR interval only) compares those mean
curves; with under 1 dB of overlap it is reported as not defined.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from fedcodec.shared.codecs.base import get_codec
from fedcodec.shared.metrics import max_abs_error, psnr, ssim
from neural_dataset import load_items

J2K_RATIOS = (6, 8, 12, 16, 24, 32, 48, 64, 96)
JXL_DISTANCES = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 2.0, 4.0)


def held_out_slices(every: int) -> list[tuple[str, np.ndarray, int]]:
    items = [i for i in load_items() if i.fold == 1][::every]
    return [(i.name, np.ascontiguousarray(i.volume[i.volume.shape[0] // 2]), i.bits) for i in items]


def measure(spec: str, slices) -> dict:
    codec = get_codec(spec)
    bpp, db, ss, err, secs = [], [], [], [], 0.0
    for _, image, bits in slices:
        t0 = time.perf_counter()
        data = codec.encode(image, bits)
        out = codec.decode(data)
        secs += time.perf_counter() - t0
        bpp.append(8.0 * len(data) / image.size)
        db.append(min(psnr(image, out, bits), 150.0))
        ss.append(ssim(image, out, bits))
        err.append(max_abs_error(image, out))
    return {"spec": spec, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(db)),
            "ssim": float(np.mean(ss)), "max_error": int(max(err)), "seconds": round(secs, 1),
            "per_slice_bpp": [round(b, 4) for b in bpp], "per_slice_psnr": [round(d, 3) for d in db]}


def bd_rate(anchor: list[dict], test: list[dict],
            within: tuple[float, float] | None = None) -> float | None:
    """Average rate difference of ``test`` vs ``anchor`` (%) at equal PSNR; None without overlap.
    ``within``: restrict the PSNR interval further (e.g. (45, 65) dB)."""
    def fit(points):
        p = np.array([x["psnr"] for x in points])
        r = np.log(np.array([x["bpp"] for x in points]))
        return p, np.polyfit(p, r, min(3, len(points) - 1))

    pa, fa = fit(anchor)
    pt, ft = fit(test)
    lo, hi = max(pa.min(), pt.min()), min(pa.max(), pt.max())
    if within is not None:
        lo, hi = max(lo, within[0]), min(hi, within[1])
    if hi - lo < 1.0:
        return None
    ia, it = np.polyint(fa), np.polyint(ft)
    diff = ((np.polyval(it, hi) - np.polyval(it, lo)) - (np.polyval(ia, hi) - np.polyval(ia, lo)))
    return 100.0 * (math.exp(diff / (hi - lo)) - 1.0)


def bd_psnr(anchor: list[dict], test: list[dict]) -> float | None:
    """Average PSNR difference (dB) of ``test`` vs ``anchor`` at equal rate (overlapping rates)."""
    def fit(points):
        r = np.log(np.array([x["bpp"] for x in points]))
        p = np.array([x["psnr"] for x in points])
        return r, np.polyfit(r, p, min(3, len(points) - 1))

    ra, fa = fit(anchor)
    rt, ft = fit(test)
    lo, hi = max(ra.min(), rt.min()), min(ra.max(), rt.max())
    if hi - lo < 0.05:
        return None
    ia, it = np.polyint(fa), np.polyint(ft)
    diff = ((np.polyval(it, hi) - np.polyval(it, lo)) - (np.polyval(ia, hi) - np.polyval(ia, lo)))
    return diff / (hi - lo)


def markdown(result: dict) -> str:
    """The RD curves, BD numbers and bounded-error rows as markdown tables."""
    lines = ["| codec | point | bpp | PSNR (dB) | SSIM |", "| --- | --- | ---: | ---: | ---: |"]
    for name, rows in result["curves"].items():
        for row in rows:
            point = row["spec"].split(":", 1)[1]
            lines.append(f"| {name} | {point} | {row['bpp']:.3f} | {row['psnr']:.2f} | "
                         f"{row['ssim']:.4f} |")
    lines += ["", "| anchor | BD-rate of neural-lossy | BD-PSNR of neural-lossy |",
              "| --- | ---: | ---: |"]
    for anchor in ("j2k", "htj2k", "jxl"):
        rate = result["summary"][f"bd_rate_vs_{anchor}"]
        gap = result["summary"][f"bd_psnr_vs_{anchor}"]
        lines.append(f"| {anchor} | {'no PSNR overlap' if rate is None else f'{rate:+.0f}%'} | "
                     f"{'-' if gap is None else f'{gap:+.1f} dB'} |")
    lines += ["", "| codec (tau=2) | bpp | max error | PSNR (dB) |", "| --- | ---: | ---: | ---: |"]
    for spec, row in result["bounded"].items():
        if "error" in row:
            lines.append(f"| {spec} | not measured: {row['error'][:80]} | | |")
        else:
            lines.append(f"| {spec} | {row['bpp']:.3f} | {row['max_error']} | {row['psnr']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--skip-hybrid", action="store_true")
    ap.add_argument("--anchors-from", type=Path, help="reuse j2k/htj2k/jxl (and bounded) rows "
                    "from an earlier run on the same slices (they do not depend on our weights)")
    args = ap.parse_args()
    slices = held_out_slices(args.every)
    print("held-out slices:", [(n, s.shape, b) for n, s, b in slices], flush=True)
    curves: dict[str, list[dict]] = {}
    earlier = json.loads(args.anchors_from.read_text()) if args.anchors_from else None
    plan = {
        "neural-lossy": [f"neural-lossy:quality={q}" for q in range(1, 9)],
        "j2k": [f"j2k:ratio={r}" for r in J2K_RATIOS],
        "htj2k": [f"htj2k:ratio={r}" for r in J2K_RATIOS],
        "jxl": [f"jxl:distance={d}" for d in JXL_DISTANCES],
    }
    for name, specs in plan.items():
        if earlier is not None and name != "neural-lossy":
            curves[name] = earlier["curves"][name]
            continue
        curves[name] = []
        for spec in specs:
            row = measure(spec, slices)
            curves[name].append(row)
            print(f"{spec:28s} bpp {row['bpp']:.3f} psnr {row['psnr']:.2f} ssim {row['ssim']:.4f} "
                  f"({row['seconds']} s)", flush=True)
    summary = {}
    for anchor in ("j2k", "htj2k", "jxl"):
        summary[f"bd_rate_vs_{anchor}"] = bd_rate(curves[anchor], curves["neural-lossy"])
        summary[f"bd_psnr_vs_{anchor}"] = bd_psnr(curves[anchor], curves["neural-lossy"])
    print(json.dumps(summary), flush=True)
    bounded = {}
    if not args.skip_hybrid:
        # the hybrid mode is retired (experiments/hybrid_vs_progressive.py measures it)
        for spec in ("jpegls:tau=2", "neural:mode=near-lossless,tau=2"):
            if earlier is not None and spec == "jpegls:tau=2":
                bounded[spec] = earlier["bounded"][spec]
                continue
            try:
                bounded[spec] = measure(spec, slices)
            except Exception as exc:  # noqa: BLE001 - another codec's weights may be stale
                bounded[spec] = {"error": str(exc)}
            print(spec, json.dumps({k: v for k, v in bounded[spec].items()
                                    if not k.startswith("per_slice")}), flush=True)
    result = {"slices": [(n, list(s.shape), b) for n, s, b in slices], "curves": curves,
              "summary": summary, "bounded": bounded}
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
