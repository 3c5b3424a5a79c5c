"""``fedcodec train DICOM_DIR --out RUN_DIR``: centralised training of the ``neural`` codec.

Reads every series under DICOM_DIR, holds out a share of the series (by SeriesInstanceUID,
drawn by ``--seed``), trains the codec's networks with a progress bar, checkpoints every
``--checkpoint-every`` steps (``--resume`` continues), logs one MLflow run, and writes
``weights.npz`` (use it as ``--codec neural:weights=RUN_DIR/weights.npz``), ``split.json``,
``training_curve.png`` and ``summary.json``. Defaults are the shipped model's recipe. The work is
in :mod:`fedcodec.client.training`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the neural codec on a DICOM folder (held-out split by series)",
        description="Train the neural lossless codec on every series of DICOM_DIR, holding out "
        "a share of the series; write weights, split, checkpoint, training curve and an MLflow "
        "run to --out. Defaults are the recipe of the shipped weights.",
    )
    parser.add_argument("dicom_dir", type=Path, metavar="DICOM_DIR", help="folder of DICOM files")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR",
                        help="run folder (weights.npz, split.json, checkpoint.pt, ...)")
    parser.add_argument("--holdout", type=float, default=0.2,
                        help="share of series held out for evaluation (default 0.2; 0 = none)")
    parser.add_argument("--seed", type=int, default=0, help="split, sampling and init seed")
    parser.add_argument("--hidden", type=int, default=48, help="hidden units per layer (48)")
    parser.add_argument("--depth", type=int, default=2, help="hidden layers (2)")
    parser.add_argument("--feature-set", type=int, default=1, choices=(1, 2),
                        help="context layout: 1 = the shipped weights', 2 = plus error feedback "
                        "(gradient-adjusted prediction, edge direction, signed neighbour error)")
    parser.add_argument("--augment", action="store_true",
                        help="also train on transposed, 8-bit and half-size copies of the "
                        "training series (a quarter of the pixel budget each)")
    parser.add_argument("--augment-noise", action="store_true",
                        help="also train on a copy of each training series with about twice its "
                        "noise (a quarter of the pixel budget; for sites with noisier scanners)")
    parser.add_argument("--epochs", type=int, default=25, help="passes over each network's samples")
    parser.add_argument("--min-steps", type=int, default=1500, help="steps per network, at least")
    parser.add_argument("--max-steps", type=int, default=3000, help="steps per network, at most")
    parser.add_argument("--batch", type=int, default=4096, help="pixels per step (4096)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--fraction", type=float, default=1 / 8,
                        help="share of every image's pixels sampled (default 1/8)")
    parser.add_argument("--series-pixels", type=int, default=1 << 21,
                        help="at most this many sampled-from pixels per series")
    parser.add_argument("--budget-seconds", type=float, default=1800.0,
                        help="time budget; networks far behind are shortened (default 1800)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    parser.add_argument("--checkpoint-every", type=int, default=200, metavar="STEPS",
                        help="write RUN_DIR/checkpoint.pt every STEPS steps (and per network)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("--keep-mosaics", action="store_true",
                        help="train on Siemens mosaics as stored (default: split into tiles)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking URI (default: sqlite:///RUN_DIR/mlflow.db)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument("--experiment", default="fedcodec-train", help="MLflow experiment name")
    parser.add_argument("--compare-slices", type=int, default=4, metavar="N",
                        help="really code N held-out slices with the new weights and JPEG XL")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or notes")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcodec.client.training.config import TrainConfig
    from fedcodec.client.training.run import train_from_dicom
    from fedcodec.shared.errors import FedcodecError

    for name in ("epochs", "min_steps", "max_steps", "batch", "hidden", "depth", "threads",
                 "checkpoint_every", "series_pixels"):
        if getattr(args, name) < (0 if name in ("min_steps",) else 1):
            raise FedcodecError(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.holdout < 1:
        raise FedcodecError(f"--holdout must be in [0, 1), not {args.holdout}")
    if not 0 < args.fraction <= 1:
        raise FedcodecError("--fraction must be in (0, 1]")
    config = TrainConfig(
        out=args.out, holdout=args.holdout, seed=args.seed, hidden=args.hidden, depth=args.depth,
        epochs=args.epochs, batch=args.batch, lr=args.lr, fraction=args.fraction,
        series_pixels=args.series_pixels, max_steps=args.max_steps, min_steps=args.min_steps,
        budget_seconds=args.budget_seconds, threads=args.threads,
        checkpoint_every=args.checkpoint_every, split_mosaics=not args.keep_mosaics,
        resume=args.resume, tracking_uri="" if args.no_mlflow else args.tracking_uri,
        feature_set=args.feature_set, augment=args.augment, augment_noise=args.augment_noise,
        experiment=args.experiment, progress=not args.no_progress,
        compare_slices=args.compare_slices,
    )
    result = train_from_dicom(args.dicom_dir, config)
    print(f"weights {result.weights_path} (model {result.model_id}, {result.global_step} steps)")
    print(f"estimated bits/pixel: train {result.train_bpp:.3f}", end="")
    if result.heldout_bpp is None:
        print(", no held-out series")
    else:
        print(f", held out {result.heldout_bpp:.3f}")
    if result.coded:
        c = result.coded
        print(f"{int(c['slices'])} held-out slices coded alone: neural {c['neural_bpp']:.3f} bpp, "
              f"JPEG XL {c['jxl_bpp']:.3f} bpp")
    if result.mlflow_run_id:
        print(f"MLflow run {result.mlflow_run_id}")
    print(f"use it: fedcodec compress STUDY --codec neural:weights={result.weights_path.resolve()}")
    return 0
