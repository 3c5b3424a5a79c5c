"""ROI coding vs whole-slice lossless and whole-slice hybrid tau, on held-out slices.

    cd experiments && nice -n 10 ../.venv/bin/python roi_coding.py --out ../out/experiments/roi

Slices: the middle slice of every fold-1 (held-out, split by series) DICOM series with both
sides >= 128, with a centred box of 15 % of the area as the ROI; and 6 brain-tumour slices
(../shared/data/tumor, 8-bit, never used in training) with their labelled tumour box as the ROI
(grown by 8 pixels each side). For every slice and codec: bpp (8 * stream bytes / all pixels),
max error inside the ROI (must be tau), PSNR outside the ROI (peak = the slice's own range, MSE
over outside pixels only). Writes ``roi_coding.md`` (tables) and ``roi_coding.png`` (bpp per
slice, and an error map).
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fedcodec.shared.codecs.base import get_codec
from fedcodec.shared.learned_lossy import roi_stream
from fedcodec.shared.learned_lossy.roi_codec import roi_masks
from fedcodec.shared.learned_lossy.roi_mask import RoiSpec, centred

sys.path.insert(0, str(Path(__file__).parent))
from neural_dataset import load_items

TUMOUR = Path(__file__).resolve().parents[2] / "shared" / "data" / "tumor"
TUMOUR_SLICES = ("0/1000", "0/1049", "1/189", "1/280", "2/1940", "2/2138")
WHOLE = ("neural", "neural:tau=2")  # whole slice lossless / within 2 (the hybrid is retired)
ROI = ("neural:mode=roi,tau=0,base=35", "neural:mode=roi,tau=0,base=40",
       "neural:mode=roi,tau=0,base=45", "neural:mode=roi,tau=0,base=50",
       "neural:mode=roi,tau=2,base=45")


def tumour_items() -> list[tuple[str, np.ndarray, int, RoiSpec]]:
    from PIL import Image

    out = []
    for name in TUMOUR_SLICES:
        image = np.asarray(Image.open(TUMOUR / f"{name}.jpg").convert("L"), dtype=np.uint8)
        _, xc, yc, w, h = (float(v) for v in (TUMOUR / f"{name}.txt").read_text().split()[:5])
        rows, cols = image.shape
        x0, x1 = int((xc - w / 2) * cols) - 8, int((xc + w / 2) * cols) + 8
        y0, y1 = int((yc - h / 2) * rows) - 8, int((yc + h / 2) * rows) + 8
        box = (max(0, x0), max(0, y0), min(cols, x1), min(rows, y1))
        out.append((f"tumor/{name}", image, 8, RoiSpec("box", box=box)))
    return out


def dicom_items() -> list[tuple[str, np.ndarray, int, RoiSpec]]:
    out = []
    for item in load_items():
        if item.fold != 1:
            continue
        image = np.ascontiguousarray(item.volume[item.volume.shape[0] // 2])
        if min(image.shape) < 128:
            continue
        out.append((item.name, image, item.bits, centred(0.15)))
    return out


def measure(image: np.ndarray, bits: int, spec: str, region: RoiSpec) -> dict:
    codec = get_codec(spec)
    if "mode=roi" in spec:
        codec = codec.with_roi(region)
    start = time.perf_counter()
    stream = codec.encode(image, bits)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = codec.decode(stream)
    decode_s = time.perf_counter() - start
    mask = roi_masks([stream])[0] if "mode=roi" in spec else region.slice_mask(0, image.shape)
    error = np.abs(decoded.astype(np.int64) - image.astype(np.int64))
    peak = max(1, int(image.max()) - int(image.min()))
    mse_out = float(np.mean(error[~mask].astype(np.float64) ** 2))
    base_bytes = len(roi_stream.unpack(stream)[2]) if "mode=roi" in spec else 0
    return {
        "base_bpp": 8 * base_bytes / image.size,
        "spec": spec, "bpp": 8 * len(stream) / image.size,
        "max_in": int(error[mask].max()), "max_out": int(error[~mask].max()),
        "psnr_out": 10 * np.log10(peak * peak / mse_out) if mse_out else float("inf"),
        "roi_fraction": float(mask.mean()), "encode_s": encode_s, "decode_s": decode_s,
    }


def _fmt_psnr(value: float) -> str:
    return "exact" if value == float("inf") else f"{value:.1f}"


def write_report(rows: list[dict], out: Path) -> None:
    specs = list(WHOLE + ROI)
    lines = ["| slice | size | bits | ROI % | " + " | ".join(f"`{s}` bpp" for s in specs) + " |",
             "| --- | --- | ---: | ---: |" + " ---: |" * len(specs)]
    for row in rows:
        cells = [f"{r['bpp']:.3f}" for r in row["results"]]
        lines.append(f"| {row['name'][:40]} | {row['shape']} | {row['bits']} | "
                     f"{100 * row['results'][-1]['roi_fraction']:.1f} | " + " | ".join(cells) + " |")
    lines += ["", ("| codec | mean bpp | of which base layer | vs lossless | "
                   "max error in ROI (all slices) | mean PSNR outside (dB) | worst PSNR outside | "
                   "encode+decode s |"),
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for k, spec in enumerate(specs):
        res = [row["results"][k] for row in rows]
        bpp = np.mean([r["bpp"] for r in res])
        base = np.mean([row["results"][0]["bpp"] for row in rows])
        psnrs = [r["psnr_out"] for r in res]
        finite = [p for p in psnrs if p != float("inf")]
        mean_psnr = _fmt_psnr(float(np.mean(finite))) if finite else "exact"
        worst = _fmt_psnr(min(psnrs))
        seconds = sum(r["encode_s"] + r["decode_s"] for r in res)
        base_bpp = np.mean([r["base_bpp"] for r in res])
        base_text = f"{base_bpp:.3f}" if "mode=roi" in spec else "-"
        lines.append(f"| `{spec}` | {bpp:.3f} | {base_text} | {100 * (bpp / base - 1):+.1f}% | "
                     f"{max(r['max_in'] for r in res)} | {mean_psnr} | {worst} | {seconds:.1f} |")
    (out / "roi_coding.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(rows: list[dict], example: tuple, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = list(WHOLE + ROI)
    show = [0, 1, 4, 6]  # lossless, tau 2, ROI tau 0 @ 45 dB, ROI tau 2 @ 45 dB
    fig, (ax, ax_img, ax_err) = plt.subplots(1, 3, figsize=(16, 4.8),
                                             gridspec_kw={"width_ratios": [2.2, 1, 1]})
    x = np.arange(len(rows))
    width = 0.8 / len(show)
    for j, k in enumerate(show):
        ax.bar(x + j * width, [row["results"][k]["bpp"] for row in rows], width, label=specs[k])
    ax.set_xticks(x + 0.4 - width / 2)
    labels = [[p for p in row["name"].split("/") if p and not p.startswith(".")][-1][:14]
              for row in rows]
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("bpp (whole slice)")
    ax.legend(fontsize=7)
    ax.set_title("ROI coding vs whole-slice lossless / hybrid tau=2")
    name, image, decoded, mask = example
    ax_img.imshow(decoded, cmap="gray")
    ax_img.contour(mask, levels=[0.5], colors="r", linewidths=0.8)
    ax_img.set_title(f"{name[:30]}: ROI tau=0, base 45 dB", fontsize=8)
    ax_err.imshow(np.abs(decoded.astype(np.int64) - image), cmap="magma")
    ax_err.contour(mask, levels=[0.5], colors="c", linewidths=0.8)
    ax_err.set_title("|error| (0 inside the ROI)", fontsize=8)
    for a in (ax_img, ax_err):
        a.set_axis_off()
    fig.tight_layout()
    fig.savefig(out / "roi_coding.png", dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("../out/experiments/roi"))
    parser.add_argument("--quick", action="store_true", help="4 DICOM + 2 tumour slices")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    items = dicom_items()
    tumours = tumour_items()
    if args.quick:
        items, tumours = items[:4], tumours[:2]
    rows, example = [], None
    for name, image, bits, region in items + tumours:
        results = [measure(image, bits, spec, region) for spec in WHOLE + ROI]
        for r in results:
            if "mode=roi" in r["spec"]:
                tau = int(r["spec"].split("tau=")[1].split(",")[0])
                assert r["max_in"] <= tau, (name, r)
        rows.append({"name": name, "shape": f"{image.shape[0]}x{image.shape[1]}", "bits": bits,
                     "results": results})
        print(name, " ".join(f"{r['bpp']:.3f}" for r in results), flush=True)
        if example is None and name.startswith("tumor/"):
            codec = get_codec(ROI[2]).with_roi(region)
            stream = codec.encode(image, bits)
            example = (name, image, codec.decode(stream), roi_masks([stream])[0])
    (args.out / "roi_coding.json").write_text(json.dumps(rows, indent=1))
    write_report(rows, args.out)
    plot(rows, example, args.out)


if __name__ == "__main__":
    main()
