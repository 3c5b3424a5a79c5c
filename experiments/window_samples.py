"""Training pixels that carry a window of grey levels, for the experiments that fit networks or
tables to coding inside a window: ``refinement_models.py`` (a refinement layer's window around
the coarse slice) and ``near_lossless_tables.py`` / ``cell_tables.py`` (a near-lossless cell
around each pixel). The walk is :func:`train._sample_slice`'s, with the context image, the
targets and the references given separately."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from fedcodec.shared.neural import train
from fedcodec.shared.neural.features import group_context, level_noise
from fedcodec.shared.neural.geometry import GROUPS, group_positions, pyramid_shapes
from fedcodec.shared.neural.weights import MAX_REFS, net_key

Window = Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray]]
"""(targets, first reference's values or None) -> (lowest, highest) grey level of each window."""


@dataclass
class WindowSamples(train.Samples):
    """Training pixels with the window [lo, hi] each is coded in."""

    lo: list[np.ndarray] = field(default_factory=list)
    hi: list[np.ndarray] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "lo": np.concatenate(self.lo), "hi": np.concatenate(self.hi)}


def empty_samples() -> dict[str, WindowSamples]:
    return {net_key(g.name, n): WindowSamples() for n in range(MAX_REFS + 1) for g in GROUPS}


def add_slice(out: dict[str, WindowSamples], context: np.ndarray, target: np.ndarray,
              reference_sets: dict[int, list[np.ndarray]], window: Window,
              rng: np.random.Generator, maxval: int) -> None:
    """One slice's samples, 1/8 of every pyramid group's pixels (at least 16) per network: the
    walk sees ``context`` (int32; the original, or what a decoder holds) and the references of
    each set; the targets are ``target``'s pixels, each with its window."""
    signed = train.error_pyramid(context, signed=True)
    errors = [np.abs(e) for e in signed]
    shapes = pyramid_shapes(*context.shape)
    for n_refs, refs in reference_sets.items():
        for level in range(len(shapes) - 1):
            stride = 1 << level
            grid = np.ascontiguousarray(context[::stride, ::stride])
            noise = level_noise(grid[::2, ::2], errors[level + 1])
            level_refs = [np.ascontiguousarray(r[::stride, ::stride]) for r in refs]
            for group in GROUPS:
                positions = group_positions(grid.shape, group)
                if positions.size == 0:
                    continue
                keep = np.sort(rng.choice(positions.size, min(
                    positions.size, max(16, positions.size // 8)), replace=False))
                ctx = group_context(grid, errors[level], level_refs, group, level, noise, keep,
                                    signed[level], 1)
                picked = positions[keep]
                x = target[::stride, ::stride].reshape(-1)[picked]
                first = level_refs[0].reshape(-1)[picked].astype(np.int64) if refs else None
                lo, hi = window(x.astype(np.int64), first)
                samples = out[net_key(group.name, n_refs)]
                samples.add(ctx, x, maxval)
                samples.lo.append(np.maximum(lo, 0).astype(np.int32))
                samples.hi.append(np.minimum(hi, maxval).astype(np.int32))


def log_sigmoid_difference(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(b) - sigmoid(a)) for b > a, accurate in both tails."""
    flip = (a + b) > 0  # sigmoid(b) - sigmoid(a) = sigmoid(-a) - sigmoid(-b): use the small side
    high, low = torch.where(flip, -a, b), torch.where(flip, -b, a)
    log_high = torch.nn.functional.logsigmoid(high)
    log_low = torch.nn.functional.logsigmoid(low)
    return log_high + torch.log(torch.clamp(-torch.expm1(log_low - log_high), min=1e-30))


def logistic(net, data, idx) -> tuple[Callable, torch.Tensor, torch.Tensor]:
    """(batch picker, mean, scale) of the discretised logistic the network predicts (the
    trainer's loss interface: ``idx`` picks a batch, None takes all)."""
    pick = (lambda t: t) if idx is None else (lambda t: t[idx])
    out = net(pick(data["features"]))
    mean = pick(data["mu0"]) + out[..., 0] * pick(data["s16"]) / 16.0
    scale = torch.exp2(pick(data["log_s16"]) / 64.0 - 4.0 + out[..., 1]) * (math.sqrt(3) / math.pi)
    return pick, mean, scale


def log_mass(mean: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
             ) -> torch.Tensor:
    """ln of the logistic's mass on the grey levels lo..hi."""
    return log_sigmoid_difference((hi + 0.5 - mean) / scale, (lo - 0.5 - mean) / scale)
