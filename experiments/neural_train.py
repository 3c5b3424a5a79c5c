"""Train the neural codec's networks and tables on one fold (or all data) and save weights.

    nice -n 10 python experiments/neural_train.py --train-fold 0 --out /tmp/fcn/w_fold0.npz

``--train-fold 0`` trains on fold 0 and reports estimated bits on fold 1 (held out, split by
series); ``--train-fold all`` trains the shipped weights on every series.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import time
from pathlib import Path

import torch
from neural_dataset import load_items

from fedcodec.shared.neural.train import (
    build_weights,
    collect_samples,
    estimated_bits,
    train_predictor,
)


def samples_for(items, args, seed):
    names = hashlib.sha1("|".join(i.name for i in items).encode()).hexdigest()[:10]
    cache = Path(f"/tmp/fcn/samples_{args.tag}_{seed}_{args.fraction}_{args.series_pixels}_{names}.pkl")
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    samples = collect_samples([(i.volume, i.bits) for i in items], args.fraction,
                              args.series_pixels, seed)
    cache.write_bytes(pickle.dumps(samples))
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-fold", default="0")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--fraction", type=float, default=1 / 8)
    ap.add_argument("--series-pixels", type=int, default=1 << 21)
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--min-steps", type=int, default=800)
    ap.add_argument("--budget", type=float, default=1800.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="v1")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    items = load_items()
    if args.train_fold == "all":
        train, test = items, []
    else:
        fold = int(args.train_fold)
        train = [i for i in items if i.fold == fold]
        test = [i for i in items if i.fold != fold]
    t0 = time.perf_counter()
    samples = samples_for(train, args, 0)
    print(f"sampled in {time.perf_counter() - t0:.0f}s:",
          {k: sum(len(t) for t in s.target) for k, s in samples.items()})
    model, report = train_predictor(samples, args.hidden, args.depth, args.epochs,
                                    time_budget_s=args.budget, max_steps=args.max_steps,
                                    min_steps=args.min_steps)
    print("train bits (float):", json.dumps({k: round(v, 3) for k, v in report.items()}))
    meta = {"name": args.out.stem, "train_fold": args.train_fold, "hidden": args.hidden,
            "depth": args.depth, "epochs": args.epochs, "fraction": args.fraction,
            "series_pixels": args.series_pixels}
    weights = build_weights(model, samples, meta)
    weights.save(args.out)
    torch.save(model.state_dict(), args.out.with_suffix(".pt"))
    print("model id", weights.model_id.hex(), "saved", args.out)
    if test:
        held = samples_for(test, args, 1)
        for key, s in held.items():
            if s.target:
                arrays = s.arrays()
                print(f"held-out {key}: {estimated_bits(weights, arrays, key):.3f} bits/px "
                      f"(train {estimated_bits(weights, samples[key].arrays(), key):.3f}) n={len(arrays['target'])}")


if __name__ == "__main__":
    main()
