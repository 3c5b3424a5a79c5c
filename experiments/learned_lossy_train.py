"""Train the learned lossy codec on fold 0 (split by series, see neural_dataset.FOLD1_KEYS).

    cd experiments && nice -n 10 ../.venv/bin/python learned_lossy_train.py \
        --steps 1500 --budget 1500 --checkpoint /tmp/fll/ckpt.pt --log /tmp/fll/curve.jsonl

``--resume`` continues from the checkpoint (warm start). Export to shipped weights with
learned_lossy_export.py. Training is CPU-only and shares 2 cores with other jobs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from fedcodec.shared.learned_lossy.model import MeanScaleHyperprior, ModelConfig
from fedcodec.shared.learned_lossy.train import CropSampler, TrainConfig, load_checkpoint, train
from neural_dataset import load_items


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warm-fraction", type=float, default=0.25)
    ap.add_argument("--budget", type=float, default=1500.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    items = [i for i in load_items() if i.fold == 0]
    print("training series (fold 0):", len(items), sum(i.volume.shape[0] for i in items), "slices")
    sampler = CropSampler([i.volume for i in items], args.crop, seed=1)
    start = 0
    if args.resume and args.checkpoint.exists():
        model, start = load_checkpoint(args.checkpoint)
        print("resumed at step", start)
    else:
        model = MeanScaleHyperprior(ModelConfig())
    cfg = TrainConfig(steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr,
                      warm_fraction=args.warm_fraction, time_budget_s=args.budget)
    curve = train(model, sampler, cfg, args.checkpoint, args.log, start_step=start)
    print(curve[-1] if curve else "no steps")


if __name__ == "__main__":
    main()
