"""How much would reconstruction inside the quantisation bin gain? An upper bound, measured.

    nice -n 10 .venv/bin/python experiments/bounded_reconstruction.py [--out DIR] [--quick]

The bounded-error coder quantises the residual ``r = x - round(mean)`` with step ``2 tau + 1``
and reconstructs at the bin centre. Decoder-side alternative: reconstruct at the conditional
mean of ``x`` inside the bin, from the model's residual distribution (a shift towards the
prediction, per scale bin and |index|). This script records, while the unchanged coder encodes
(``_code_group`` wrapped; its prediction recomputed by the same ``_predict_group``), every coded
pixel's scale bin ``k``, index ``t`` and in-bin error ``d = (x - reconstruction) * sign(t)``, and
reports per tau:

* ``ideal gain``: the PSNR gain if every pixel with ``t != 0`` were reconstructed at the exact mean
  of ``d`` of its (k, min(|t|, 3)) bucket, measured on the same data it is fitted on (an
  optimistic, open-loop upper bound; it also ignores that the shifted point breaks the bound
  for pixels on the far side of their bin, which would have to take the next index: more bits);
* ``far side``: the share of pixels that would then exceed tau.

RDOQ (the encoder picking, per pixel, the cheaper index whose reconstruction is within tau) has
no freedom with centre reconstruction: bins of width ``2 tau + 1`` tile the integers, so every
value has exactly one admissible index. It gains freedom only together with shifted points.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.metrics import psnr
from fedcodec.shared.neural import bin_centroid, slice_coder
from fedcodec.shared.neural.fixed_point import ilog2_q6
from fedcodec.shared.neural.geometry import group_positions
from fedcodec.shared.neural.tables import N_BINS, scale_bin
from fedcodec.shared.sources import read_stacks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_report import report_table  # noqa: E402
from learned_lossy_rd import bd_rate  # noqa: E402
from lossy_rd import DATA, load_source  # noqa: E402

FIT_FOLDERS = ("ge", "philips", "siemens/siemens_b", "siemens/siemens_c", "toshiba")
"""Training data of the shipped weights (../shared/data/dicom) the table is fitted on."""

RECORD: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
_original_code_group = slice_coder._code_group


def _recording_code_group(io, models, weights, params, recon, errors, original, refs, group,
                          level_index, noise, tau_map=None,
                          signed=None):  # type: ignore[no-untyped-def]
    if original is None or tau_map is not None or not params.tau or params.centroid:
        return _original_code_group(io, models, weights, params, recon, errors, original, refs,
                                    group, level_index, noise, tau_map, signed)
    positions = group_positions(recon.shape, group)
    if positions.size:
        pred_q3, log_scale, _ = slice_coder._predict_group(
            weights, params, recon, errors, refs, group, level_index, noise, positions.size, None,
            signed)
        base = (pred_q3 + 4) >> 3
        k = scale_bin(log_scale - int(ilog2_q6(np.array([params.step]))[0]))
        x = original.reshape(-1)[positions].astype(np.int64)
        r = x - base
        t = np.sign(r) * ((np.abs(r) + params.tau) // params.step)
    _original_code_group(io, models, weights, params, recon, errors, original, refs, group,
                         level_index, noise, tau_map, signed)
    if positions.size:
        values = recon.reshape(-1)[positions].astype(np.int64)
        RECORD.append((k, t, x - values))
    return None


def analyse(tau: int, bits: int, images: list[np.ndarray]) -> dict:
    RECORD.clear()
    codec = get_codec(f"neural:tau={tau}")
    before = []
    for image in images:
        before.append(psnr(image, codec.decode(codec.encode(image, bits)), bits))
    k = np.concatenate([r[0] for r in RECORD])
    t = np.concatenate([r[1] for r in RECORD])
    error = np.concatenate([r[2] for r in RECORD]).astype(np.float64)
    d = error * np.sign(t)  # in-bin error, positive = away from the prediction
    mse_before = float(np.mean(error * error))  # every pixel once (the pyramid codes each once)
    moving = t != 0
    bucket = k * 4 + np.minimum(np.abs(t), 3)
    shifted = error.copy()
    far = 0
    for b in np.unique(bucket[moving]):
        sel = moving & (bucket == b)
        mean = d[sel].mean()
        shifted[sel] -= np.sign(t[sel]) * mean
        far += int(np.count_nonzero(np.abs(d[sel] - np.round(mean)) > tau))
    mse_after = float(np.mean(shifted * shifted))
    return {"tau": tau, "pixels": int(d.size), "nonzero_index_share": float(moving.mean()),
            "psnr_centre": float(np.mean(before)),
            "ideal_gain_db": 10 * np.log10(mse_before / mse_after) if mse_after else None,
            "far_side_share": far / d.size}


def fit(quick: bool) -> tuple[tuple[int, ...], ...]:
    """The centroid table: mean in-bin offset towards the prediction, in 1/256 of the step, per
    group of ``bin_centroid.K_GROUP`` scale bins and |t| bucket, on the training data."""
    sums = np.zeros((N_BINS, bin_centroid.T_BUCKETS))
    counts = np.zeros_like(sums)
    for folder in FIT_FOLDERS[:2] if quick else FIT_FOLDERS:
        stacks, _ = read_stacks(DATA / "dicom" / folder)
        for stack in stacks[:3]:
            volume, _ = stack.codec_volume()
            image = np.ascontiguousarray(volume[volume.shape[0] // 2])
            for tau in (2, 4, 8, 16, 32, 64):
                if tau >= 1 << (stack.bits - 2):
                    continue
                RECORD.clear()
                codec = get_codec(f"neural:tau={tau}")
                codec.encode(image, stack.bits)
                step = 2 * tau + 1
                for k, t, error in RECORD:
                    moving = t != 0
                    bucket = np.minimum(np.abs(t[moving]), bin_centroid.T_BUCKETS - 1)
                    towards = -(error[moving] * np.sign(t[moving])) / step
                    np.add.at(sums, (k[moving], bucket), towards)
                    np.add.at(counts, (k[moving], bucket), 1)
            print(f"fitted on {stack.name} ({stack.bits} bits)", flush=True)
    g = bin_centroid.K_GROUP
    groups = []
    for start in range(0, N_BINS, g):
        n = counts[start:start + g].sum(axis=0)
        mean = np.where(n >= 200, sums[start:start + g].sum(axis=0) / np.maximum(n, 1), 0.0)
        groups.append(tuple(int(round(256 * max(0.0, m))) for m in mean))
    while groups and not any(groups[-1]):
        groups.pop()
    return tuple(groups)


def compare(images, bits, taus) -> dict:
    """Real coding with and without centroid reconstruction: (bpp, PSNR) per tau, BD-rate."""
    curves = {}
    for centroid in (0, 1):
        rows = []
        for tau in taus:
            codec = get_codec(f"neural:tau={tau},centroid={centroid}")
            size, value = 0, []
            for image in images:
                data = codec.encode(image, bits)
                out = codec.decode(data)
                assert np.abs(out.astype(np.int64) - image).max() <= tau
                size += len(data)
                value.append(psnr(image, out, bits))
            rows.append({"tau": tau, "bpp": 8 * size / sum(i.size for i in images),
                         "psnr": float(np.mean(value))})
        curves[centroid] = rows
    gains = [b["psnr"] - a["psnr"] for a, b in zip(curves[0], curves[1], strict=True)]
    rates = [b["bpp"] / a["bpp"] - 1 for a, b in zip(curves[0], curves[1], strict=True)]
    return {"psnr_gain_db": gains, "rate_change": rates,
            "bd_rate": bd_rate(curves[0], curves[1], (45.0, 65.0)), "curves": curves}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sources", default="philips-dwi,enhanced,pypi-mr")
    ap.add_argument("--fit", action="store_true", help="print the centroid table for "
                    "shared/neural/bin_centroid.py, fitted on ../shared/data/dicom")
    ap.add_argument("--compare", action="store_true", help="code with and without the "
                    "centroid reconstruction (the table in bin_centroid.py) on unseen MR")
    args = ap.parse_args()
    if args.fit:
        slice_coder._code_group = _recording_code_group
        print("FRACTION_Q8_GROUPS =", fit(args.quick))
        return
    if args.compare:
        lines = ["| source | tau | PSNR gain | rate change |", "| --- | ---: | ---: | ---: |"]
        summary = ["", "| source | BD-rate of centroid reconstruction (45-65 dB) |",
                   "| --- | ---: |"]
        rows = []
        for source in args.sources.split(","):
            runs = load_source(source, 1 if args.quick else 2, 2)
            images = [np.ascontiguousarray(s) for _, run, _ in runs for s in run]
            bits = runs[0][2]
            scale = 1 << max(0, bits - 12)
            taus = [t * scale for t in ((4, 16, 48) if args.quick else (2, 4, 8, 16, 32, 64))]
            row = {"source": source, **compare(images, bits, taus)}
            rows.append(row)
            for tau, gain, rate in zip(taus, row["psnr_gain_db"], row["rate_change"], strict=True):
                lines.append(f"| {source} | {tau} | {gain:+.3f} dB | {100 * rate:+.2f}% |")
            bd = row["bd_rate"]
            summary.append(f"| {source} | {'n/a' if bd is None else f'{bd:+.2f}%'} |")
            print(lines[-1], flush=True)
        print("\n".join(lines + summary))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "centroid_compare.md").write_text("\n".join(lines + summary) + "\n")
            (args.out / "centroid_compare.json").write_text(json.dumps(rows, indent=1))
        return
    slice_coder._code_group = _recording_code_group
    rows = []
    for source in args.sources.split(","):
        runs = load_source(source, 1 if args.quick else 2, 2)
        images = [np.ascontiguousarray(s) for _, run, _ in runs for s in run]
        bits = runs[0][2]
        for tau in ((4, 32) if args.quick else (2, 4, 8, 16, 32, 64)):
            row = {"source": source, **analyse(tau, bits, images)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["| source | tau | PSNR (centre) | share t != 0 | ideal gain (upper bound) | "
             "would exceed tau |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['source']} | {r['tau']} | {r['psnr_centre']:.2f} | "
              f"{r['nonzero_index_share']:.2f} | {r['ideal_gain_db']:+.3f} dB | "
              f"{r['far_side_share']:.3f} |" for r in rows]
    report_table(lines, rows, args.out, "bounded_reconstruction")


if __name__ == "__main__":
    main()
