"""Where a federation starts.

By default round 1 starts from the codec's default shipped weights (``neural_v2.npz``; a shipped
model's name such as ``neural_v1`` picks that one): the federation
fine-tunes the model every site already codes with, instead of re-learning it from zero, and the
promotion gate measures it against exactly that model. ``initial-weights = none`` starts from a
fresh ``hidden`` x ``depth`` network (the previous behaviour, used by tests and experiments that
compare training from scratch); any other value is a weights file on the coordinator.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.neural.model import NeuralPredictor, from_integer
from fedcodec.shared.neural.weights import DEFAULT_WEIGHTS, NeuralWeights, shipped_path


def initial_predictor(config: FederationConfig) -> NeuralPredictor:
    """The float model round 1 starts from."""
    source = config.initial_weights.strip()
    if source.lower() in ("", "none"):
        torch.manual_seed(config.seed)
        return NeuralPredictor(config.hidden, config.depth)
    path = (DEFAULT_WEIGHTS if source.lower() == "shipped"
            else shipped_path(source) or Path(source))
    if not path.is_file():
        raise FedcodecError(f"initial-weights {source!r}: no such weights file ({path})")
    return from_integer(NeuralWeights.load(path))

