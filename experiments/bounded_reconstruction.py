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

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.metrics import psnr
from fedcodec.shared.neural import slice_coder
from fedcodec.shared.neural.fixed_point import ilog2_q6
from fedcodec.shared.neural.geometry import group_positions
from fedcodec.shared.neural.tables import scale_bin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lossy_rd import load_source  # noqa: E402

RECORD: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
_original_code_group = slice_coder._code_group


def _recording_code_group(io, models, weights, params, recon, errors, original, refs, group,
                          level_index, noise, tau_map=None):  # type: ignore[no-untyped-def]
    if original is None or tau_map is not None or not params.tau:
        return _original_code_group(io, models, weights, params, recon, errors, original, refs,
                                    group, level_index, noise, tau_map)
    positions = group_positions(recon.shape, group)
    if positions.size:
        pred_q3, log_scale, _ = slice_coder._predict_group(
            weights, params, recon, errors, refs, group, level_index, noise, positions.size, None)
        base = (pred_q3 + 4) >> 3
        k = scale_bin(log_scale - int(ilog2_q6(np.array([params.step]))[0]))
        x = original.reshape(-1)[positions].astype(np.int64)
        r = x - base
        t = np.sign(r) * ((np.abs(r) + params.tau) // params.step)
    _original_code_group(io, models, weights, params, recon, errors, original, refs, group,
                         level_index, noise, tau_map)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sources", default="philips-dwi,enhanced,pypi-mr")
    args = ap.parse_args()
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
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bounded_reconstruction.md").write_text("\n".join(lines) + "\n")
        (args.out / "bounded_reconstruction.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
