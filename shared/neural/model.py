"""The float training model that mirrors the integer networks of the codec.

One small MLP per (polyphase group, number of reference slices), applied to every pixel's context
vector (``features.group_context``, the very function the codec uses). It outputs the mean offset
(in units of local activity) and the log2-scale offset; hidden activations are clamped to [0, 8]
and parameters to the fixed-point bounds (``clamp_parameters`` after each step) exactly like the
integer version, so quantising the weights (``to_integer``) changes predictions only by rounding.

DP training: only ``nn.Linear`` layers in an ``nn.ModuleDict`` — no buffers, no normalisation
layers — so Opacus accepts it unchanged (``ModuleValidator.validate(model, strict=True)`` is
empty). Inputs are ``(batch, pixels, features)``: the batch axis is the privacy sample (a slice),
and Opacus' Linear grad sampler sums over the pixel axis.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn

from fedcodec.shared.neural.features import FEATURE_SETS, feature_count
from fedcodec.shared.neural.fixed_point import ACT_LIMIT, BIAS_LIMIT, ONE, QW, WEIGHT_LIMIT, Q
from fedcodec.shared.neural.geometry import GROUPS
from fedcodec.shared.neural.weights import MAX_REFS, IntegerMlp, NeuralWeights, net_key

LOG2_E = 1.0 / math.log(2.0)


class ContextMlp(nn.Module):
    """Per-pixel MLP: features (Q4 values / 16) -> (mean offset, log2-scale offset)."""

    def __init__(self, n_in: int, hidden: int = 32, depth: int = 2) -> None:
        super().__init__()
        sizes = [n_in] + [hidden] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.out = nn.Linear(hidden, 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.clamp(layer(x), 0.0, ACT_LIMIT / ONE)
        return self.out(x)


class NeuralPredictor(nn.Module):
    """All the codec's networks, keyed like the weights file (``B0`` ... ``D2``)."""

    def __init__(self, hidden: int = 32, depth: int = 2, feature_set: int = 1) -> None:
        super().__init__()
        self.feature_set = feature_set
        self.nets = nn.ModuleDict(
            {
                net_key(g.name, n): ContextMlp(feature_count(g, n, feature_set), hidden, depth)
                for n in range(MAX_REFS + 1)
                for g in GROUPS
            }
        )

    def forward(self, key: str, features: torch.Tensor) -> torch.Tensor:
        return self.nets[key](features)


@torch.no_grad()
def clamp_parameters(model: nn.Module) -> None:
    """Keep weights and biases inside the integer bounds (call after every optimiser step)."""
    for name, p in model.named_parameters():
        limit = (WEIGHT_LIMIT >> QW) if name.endswith("weight") else BIAS_LIMIT / (1 << (Q + QW))
        p.clamp_(-limit, limit)


def logistic_bits(out: torch.Tensor, x: torch.Tensor, mu0: torch.Tensor, s16: torch.Tensor,
                  log_s16: torch.Tensor) -> torch.Tensor:
    """Bits to code integer ``x`` under the discretised logistic the network predicts.

    All tensors share leading shape; ``out[..., 0]`` is the mean offset in activity units,
    ``out[..., 1]`` the log2-scale offset (the codec's scale bins follow the same log2 scale).
    """
    s = s16 / 16.0
    mean = mu0 + out[..., 0] * s
    log2_sigma = log_s16 / 64.0 - 4.0 + out[..., 1]
    scale = torch.exp2(log2_sigma) * (math.sqrt(3.0) / math.pi)
    upper = torch.sigmoid((x + 0.5 - mean) / scale)
    lower = torch.sigmoid((x - 0.5 - mean) / scale)
    p = torch.clamp(upper - lower, min=1e-9)
    return -torch.log(p) * LOG2_E


def to_integer(model: NeuralPredictor, counts: np.ndarray, meta: dict) -> NeuralWeights:
    """Quantise the float model to the codec's fixed-point networks (Q8 weights, Q12 biases)."""
    nets = {}
    for key, mlp in model.nets.items():
        layers = list(mlp.hidden) + [mlp.out]
        ws = [np.clip(np.round(layer.weight.detach().double().numpy().T * (1 << QW)),
                      -WEIGHT_LIMIT, WEIGHT_LIMIT) for layer in layers]
        bs = [np.clip(np.round(layer.bias.detach().double().numpy() * (1 << (QW + Q))),
                      -BIAS_LIMIT, BIAS_LIMIT) for layer in layers]
        nets[key] = IntegerMlp(ws, bs)
    return NeuralWeights(nets, counts, meta)


def from_integer(weights: NeuralWeights) -> NeuralPredictor:
    """The float model whose quantisation is ``weights`` (inverse of :func:`to_integer`).

    Federated training starts from the shipped integer networks this way: Q8 weights and Q12
    biases divided back, so ``to_integer(from_integer(w), w.counts, ...)`` gives ``w``'s networks.
    """
    first = next(iter(weights.nets.values()))
    hidden, depth = first.weights[0].shape[1], len(first.weights) - 1
    model = NeuralPredictor(hidden, depth, weights.feature_set)
    with torch.no_grad():
        for key, mlp in model.nets.items():
            net = weights.nets[key]
            layers = list(mlp.hidden) + [mlp.out]
            if len(layers) != len(net.weights):
                raise ValueError(f"network {key}: {len(net.weights)} layers, expected {len(layers)}")
            for layer, w, b in zip(layers, net.weights, net.biases):
                layer.weight.copy_(torch.from_numpy(np.asarray(w, np.float64).T / (1 << QW)))
                layer.bias.copy_(torch.from_numpy(np.asarray(b, np.float64) / (1 << (QW + Q))))
    return model


def predictor_shaped_like(arrays: list[np.ndarray]) -> NeuralPredictor:
    """An untrained :class:`NeuralPredictor` whose ``state_dict`` matches ``arrays`` (the order
    the federation exchanges): a site builds the model the coordinator sends, whatever its size."""
    per_net = len(arrays) // len(NET_ORDER)
    if per_net < 4 or per_net % 2 or per_net * len(NET_ORDER) != len(arrays):
        raise ValueError(f"{len(arrays)} arrays do not describe the codec's networks")
    fan_in = int(np.shape(arrays[0])[1]) if np.ndim(arrays[0]) == 2 else 0
    feature_set = next((f for f in FEATURE_SETS if feature_count(GROUPS[0], 0, f) == fan_in), 1)
    model = NeuralPredictor(int(np.shape(arrays[0])[0]), per_net // 2 - 1, feature_set)
    shapes = [tuple(t.shape) for t in model.state_dict().values()]
    if shapes != [tuple(np.shape(a)) for a in arrays]:
        raise ValueError("parameter shapes do not match the codec's networks")
    return model


NET_ORDER = tuple(net_key(g.name, n) for n in range(MAX_REFS + 1) for g in GROUPS)
