"""``fedcodec demo``: the platform end to end on MRI that ships with the dependencies.

Three simulated sites train the neural codec federatedly with DP; the de-identified demo study is
compressed (lossless, near-lossless, lossy) and compared with the classical codecs, encrypted and
stored in a locally started storage service, and classified from its latents on a locally
started encrypted-analysis service. Everything lands in ``--out`` (default ``out/demo``):
``report.md`` with its plots, the containers, keys, certificates and an MLflow store. The steps
are plain functions in :mod:`fedcodec.client.demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# The demo's steps import torch, Flower and TenSEAL: load them only when the demo runs, so
# every other `fedcodec` command starts fast.
STEP_LIST = "data,benchmark,federated,compress,storage,analysis"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the platform end to end on embedded MRI (no download)"
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--quick", action="store_true",
                        help="a small version (about 2 minutes): fewer slices, codecs, rounds")
    parser.add_argument("--steps", help=f"comma-separated steps to run ({STEP_LIST}); "
                        "the steps they need are added")
    parser.add_argument("--rounds", type=int, help="federated rounds (default 3, quick 1)")
    parser.add_argument("--analysis-model", type=Path,
                        help="model folder from `fedcodec analyze train` (default: a toy head "
                        "fitted on the embedded MRI)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcodec.client.demo.context import DemoConfig
    from fedcodec.client.demo.runner import run_demo

    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip()) if args.steps else None
    config = DemoConfig(out_dir=args.out, quick=args.quick, steps=steps, rounds=args.rounds,
                        analysis_model=args.analysis_model, progress=not args.no_progress)
    return 1 if run_demo(config).failed else 0
