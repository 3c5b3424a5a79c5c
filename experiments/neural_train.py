"""Train the neural codec's networks and tables on one fold (or all data) and save weights.

    nice -n 10 python experiments/neural_train.py --train-fold 0 --out /tmp/fcn/w_fold0.npz

``--train-fold 0`` trains on fold 0 and reports estimated bits on fold 1 (held out, split by
series, see neural_dataset.FOLD1_KEYS); ``--train-fold all`` trains on every series. Series come
from ``neural_dataset.load_items`` (``--reader issue``: the issue-3 reading, mosaics whole, what
the shipped neural_v1 weights were trained on) or, with ``--dicom-dir DIR``, from the product's
reader exactly as ``fedcodec train`` reads DIR.

Everything after reading is ``fedcodec.client.training.run.train_on_volumes``, the function
behind ``fedcodec train``: same samples, trainer, quantisation and tables, so the same volumes and
options give the same weights through either path. The run folder (checkpoint, curve, summary) is
``--out`` without its suffix; ``--resume`` continues it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from neural_dataset import _fold, load_items

from fedcodec.client.training.config import TrainConfig
from fedcodec.client.training.data import load_training_series
from fedcodec.client.training.run import train_on_volumes


def load_named_volumes(args) -> list[tuple[str, object, int]]:
    """(name, unsigned volume, bits) of every series, in the order training sees them."""
    if args.dicom_dir:
        series, _ = load_training_series(args.dicom_dir)
        return [(s.name, s.volume, s.bits) for s in series]
    return [(i.name, i.volume, i.bits) for i in load_items(args.reader)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-fold", default="0")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reader", choices=("issue", "project"), default="issue")
    ap.add_argument("--dicom-dir", type=Path, help="read this folder as fedcodec train does")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--fraction", type=float, default=1 / 8)
    ap.add_argument("--series-pixels", type=int, default=1 << 21)
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--min-steps", type=int, default=800)
    ap.add_argument("--budget", type=float, default=1800.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--tracking-uri", default="", help="MLflow URI (default: no MLflow)")
    ap.add_argument("--tag", default="", help="ignored (named the old sample cache)")
    args = ap.parse_args()
    items = load_named_volumes(args)
    if args.train_fold == "all":
        train, test = items, []
    else:
        fold = int(args.train_fold)
        train = [i for i in items if _fold(i[0]) == fold]
        test = [i for i in items if _fold(i[0]) != fold]
    config = TrainConfig(
        out=args.out.with_suffix(""), holdout=0.0, seed=args.seed, hidden=args.hidden,
        depth=args.depth, epochs=args.epochs, fraction=args.fraction,
        series_pixels=args.series_pixels, max_steps=args.max_steps, min_steps=args.min_steps,
        budget_seconds=args.budget, threads=args.threads, checkpoint_every=args.checkpoint_every,
        resume=args.resume, tracking_uri=args.tracking_uri, compare_slices=0,
        split_mosaics=args.reader != "issue" or bool(args.dicom_dir),
    )
    meta = {"name": args.out.stem, "train_fold": args.train_fold,
            "source": str(args.dicom_dir or f"neural_dataset:{args.reader}")}
    result = train_on_volumes([(v, b) for _, v, b in train], [(v, b) for _, v, b in test],
                              config, meta)
    print("train bits (float):", json.dumps({k: round(v, 3) for k, v in result_report(result).items()}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.weights_path, args.out)
    import torch

    torch.save(result.model.state_dict(), args.out.with_suffix(".pt"))
    print("model id", result.model_id, "saved", args.out)
    for key, entry in result.per_network.items():
        if "heldout_bpp" in entry:
            print(f"held-out {key}: {entry['heldout_bpp']:.3f} bits/px "
                  f"(train {entry['train_bpp']:.3f}) n={entry['heldout_pixels']}")
    if result.heldout_bpp is not None:
        print(f"held-out all networks: {result.heldout_bpp:.3f} bits/px "
              f"(train {result.train_bpp:.3f})")


def result_report(result) -> dict[str, float]:
    summary = json.loads((result.weights_path.parent / "summary.json").read_text())
    return summary["report"]


if __name__ == "__main__":
    main()
