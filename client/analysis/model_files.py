"""The model folder ``fedcodec analyze train`` writes and ``eval`` / the service read.

    MODEL_DIR/classifier.pt        latent classifier: config, weights, latent source identity
    MODEL_DIR/head-linear.json     encrypted-inference heads (weights + public card data)
    MODEL_DIR/head-poly-mlp.json
    MODEL_DIR/split.json           the seeded split it was trained on
    MODEL_DIR/train.json           training history and validation metrics
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from fedcodec.shared.analysis.classifier import (
    ClassifierConfig,
    LatentStatsNet,
    TumourClassifier,
    build_classifier,
)
from fedcodec.shared.errors import CorruptDataError, FedcodecError

CLASSIFIER_FILE = "classifier.pt"
SPLIT_FILE = "split.json"
TRAIN_FILE = "train.json"


def save_classifier(path: Path, model: TumourClassifier | LatentStatsNet, meta: dict[str, Any]) -> None:
    """Write config + weights + metadata (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": model.config.to_json(), "state": model.state_dict(), "meta": meta}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_classifier(path: Path) -> tuple[TumourClassifier | LatentStatsNet, dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise FedcodecError(f"no classifier at {path} (run `fedcodec analyze train` first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build_classifier(ClassifierConfig(**payload["config"]))
        model.load_state_dict(payload["state"])
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise CorruptDataError(f"unreadable classifier {path}: {exc}") from None
    model.eval()
    return model, payload.get("meta", {})
