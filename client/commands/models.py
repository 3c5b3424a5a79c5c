"""``fedcodec models pull``: fetch a federated codec model from the federation's MLflow registry."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="federated codec models from the MLflow registry")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    pull = sub.add_parser("pull", help="download a registered model's codec weights (hash-checked)")
    pull.add_argument("model", help="NAME, NAME/VERSION, NAME@ALIAS or NAME/latest (models:/ optional)")
    pull.add_argument("--tracking-uri", default=None,
                      help="the federation's MLflow tracking URI (default: FEDCODEC_MODEL_REGISTRY, "
                           "then MLFLOW_TRACKING_URI)")
    pull.add_argument("-o", "--out", type=Path, required=True, help="weights file to write (.npz)")
    pull.set_defaults(func=run_pull)


def run_pull(args: argparse.Namespace) -> int:
    from fedcodec.shared.neural.model_registry import copy_weights

    model = copy_weights(args.model, args.out, args.tracking_uri)
    print(f"{model.uri} -> {args.out} (model id {model.model_id or '?'}, sha256 {model.sha256}, "
          f"run {model.run_id}); use it with --codec neural:weights={args.out}")
    return 0
