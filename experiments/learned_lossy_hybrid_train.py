"""Fit the hybrid mode's residual networks on fold 0 (by series) and save them.

    cd experiments && nice -n 10 ../.venv/bin/python learned_lossy_hybrid_train.py \
        --out ../shared/learned_lossy/weights/hybrid_residual_v1.npz

The one-reference networks learn the JPEG 2000 base as reference (see
shared/learned_lossy/hybrid_train.py). Reports the ideal code
length of held-out (fold 1) samples under the integer model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from fedcodec.shared.learned_lossy.hybrid import BASE_CANDIDATES_DB
from fedcodec.shared.learned_lossy.hybrid_train import collect_hybrid_samples, train_hybrid_weights
from fedcodec.shared.neural.train import estimated_bits
from neural_dataset import load_items


def pick_slices(items, per_series: int, seed: int) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for item in items:
        n = item.volume.shape[0]
        for i in np.sort(rng.choice(n, min(n, per_series), replace=False)):
            out.append((item.volume[i], item.bits))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-series", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--budget", type=float, default=600.0)
    ap.add_argument("--tau", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    items = load_items()
    train = pick_slices([i for i in items if i.fold == 0], args.per_series, 0)
    held = pick_slices([i for i in items if i.fold == 1], max(2, args.per_series // 4), 1)
    t0 = time.perf_counter()
    samples = collect_hybrid_samples(train, BASE_CANDIDATES_DB, seed=0)
    print(f"sampled {len(train)} slices in {time.perf_counter() - t0:.0f}s", flush=True)
    meta = {"name": args.out.stem, "kind": "hybrid residual (reference = J2K 5/3 base)",
            "train_split": "fold 0 of experiments/neural_dataset.py", "tau": args.tau,
            "base_levels_db": list(BASE_CANDIDATES_DB), "per_series": args.per_series}
    weights, report = train_hybrid_weights(samples, meta, args.tau, args.epochs, args.budget)
    print("train bits (float):", {k: round(v, 3) for k, v in report.items()}, flush=True)
    weights.save(args.out)
    print("model id", weights.model_id.hex(), "saved", args.out, flush=True)
    held_samples = collect_hybrid_samples(held, BASE_CANDIDATES_DB, seed=1)
    for key, s in held_samples.items():
        if s.target:
            print(f"held-out {key}: {estimated_bits(weights, s.arrays(), key, args.tau):.3f} "
                  f"bits/px at tau={args.tau}")


if __name__ == "__main__":
    main()
