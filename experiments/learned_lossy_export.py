"""Freeze a training checkpoint into the shipped weights file.

    ../.venv/bin/python learned_lossy_export.py --checkpoint /tmp/fll/ckpt.pt \
        --out ../shared/learned_lossy/weights/learned_lossy_v1.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcodec.shared.learned_lossy.train import load_checkpoint
from fedcodec.shared.learned_lossy.weights import export_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    model, step = load_checkpoint(args.checkpoint)
    weights = export_weights(model, {"name": args.out.stem, "train_steps": step,
                                     "train_split": "fold 0 of experiments/neural_dataset.py"})
    weights.save(args.out)
    print("model id", weights.model_id.hex(), "steps", step, "saved", args.out,
          f"{args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
