"""Local training of the neural predictor at one site, with or without DP-SGD (Opacus).

One row of a batch is one privacy unit: for every network it holds ``pixels_per_unit`` pixels
drawn from that unit's pool, so the model sees ``(units, pixels, features)`` and Opacus' Linear
grad sampler sums each unit's pixels into one per-unit gradient. Batches are Poisson samples of
units (Opacus' ``UniformWithReplacementSampler``), each unit's gradient is clipped to
``max_grad_norm`` and Gaussian noise is added by Opacus' ``DPOptimizer``: DP-SGD at the chosen
unit. The accountant is charged *before* the steps run, so a crash can only over-count.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedcodec.client.federated.unit_samples import FIELDS, UnitSamples
from fedcodec.shared.neural.fixed_point import ONE
from fedcodec.shared.neural.model import (
    NeuralPredictor,
    clamp_parameters,
    logistic_bits,
    to_integer,
)
from fedcodec.shared.neural.tables import logistic_counts
from fedcodec.shared.neural.train import estimated_bits
from fedcodec.shared.privacy import PrivacyAccountant


@dataclass(frozen=True)
class LocalTrainConfig:
    """One site's local training in one round."""

    steps: int = 20
    batch_units: float = 8.0
    """Expected units per batch; the Poisson rate is ``batch_units / units`` (at most 1)."""
    sample_rate: float | None = None
    """If set, the Poisson rate itself (overrides ``batch_units``)."""
    pixels_per_unit: int = 64
    lr: float = 2e-3
    dp: bool = True
    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None
    """None: calibrated so that ``planned_rounds * steps`` steps spend exactly the target ε."""
    planned_rounds: int = 1
    seed: int = 0
    reproducible_noise: bool = False
    """Seed DP noise and Poisson sampling from ``seed`` (tests, experiments). Off by default: the
    seed is in the run config the coordinator knows, so it could regenerate and subtract the
    noise; the generator is then seeded from ``os.urandom`` instead."""
    threads: int = 1
    """Torch threads; one is fastest for these small per-unit tensors on shared cores."""


@dataclass
class LocalTrainResult:
    steps: int
    loss: float
    """Mean code length (bits/pixel) of the sampled training rows, after training."""
    epsilon: float | None
    noise_multiplier: float | None
    sample_rate: float
    budget_exhausted: bool = False


def get_parameters(model: NeuralPredictor) -> list[np.ndarray]:
    """The model's tensors, in ``state_dict`` order (the order the federation exchanges)."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def set_parameters(model: NeuralPredictor, arrays: list[np.ndarray]) -> None:
    keys = list(model.state_dict())
    if len(keys) != len(arrays):
        raise ValueError(f"expected {len(keys)} arrays, got {len(arrays)}")
    model.load_state_dict({k: torch.from_numpy(np.asarray(a, dtype=np.float32)) for k, a in
                           zip(keys, arrays)})


class UnitBatcher:
    """Turns unit indices into per-network tensors of shape ``(units, pixels, ...)``."""

    def __init__(self, samples: UnitSamples, pixels_per_unit: int, seed: int = 0) -> None:
        self.samples = samples
        self.pixels = pixels_per_unit
        self.rng = np.random.default_rng(seed)

    def batch(self, units: np.ndarray) -> dict[str, dict[str, torch.Tensor]]:
        out = {}
        units = np.asarray(units, dtype=np.int64)
        for key, pool in self.samples.pools.items():
            counts = pool.counts[units]
            has = counts > 0
            draw = (self.rng.random((units.size, self.pixels)) * np.maximum(counts, 1)[:, None])
            rows = pool.offsets[units][:, None] + draw.astype(np.int64)
            rows = np.where(has[:, None], rows, 0)
            tensors = {}
            for name in FIELDS:
                source = pool.arrays[name]
                if source.shape[0] == 0:
                    shape = (units.size, self.pixels) + source.shape[1:]
                    values = np.zeros(shape, dtype=np.float32)
                else:
                    values = source[rows].astype(np.float32)
                tensors[name] = torch.from_numpy(values)
            tensors["features"] = tensors["features"] / float(ONE)
            tensors["s16"] = torch.clamp(tensors["s16"], min=16.0)
            tensors["mask"] = torch.from_numpy(np.repeat(has[:, None], self.pixels, 1).astype(np.float32))
            out[key] = tensors
        return out


class UnitLoss(nn.Module):
    """Per-unit mean code length over every network's pixels: the DP-SGD loss of one row."""

    def __init__(self, predictor: NeuralPredictor) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, batch: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:
        total = None
        weight = None
        for key, t in batch.items():
            out = self.predictor(key, t["features"])
            bits = logistic_bits(out, t["target"], t["mu0"], t["s16"], t["log_s16"]) * t["mask"]
            total = bits.sum(dim=1) if total is None else total + bits.sum(dim=1)
            weight = t["mask"].sum(dim=1) if weight is None else weight + t["mask"].sum(dim=1)
        return total / torch.clamp(weight, min=1.0)


def calibrated_noise(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                     mechanism: str = "rdp") -> float:
    """Noise multiplier that spends ``target_epsilon`` in exactly ``steps`` steps."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                      sample_rate=sample_rate, steps=max(1, steps),
                                      accountant=mechanism))


def train_local(model: NeuralPredictor, samples: UnitSamples, config: LocalTrainConfig,
                accountant: PrivacyAccountant | None = None, round_index: int = 0) -> LocalTrainResult:
    """Train ``model`` in place for up to ``config.steps`` steps; DP needs ``accountant``."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    torch.set_num_threads(config.threads)
    n = samples.n_units
    q = config.sample_rate or min(1.0, config.batch_units / max(1, n))
    torch.manual_seed(config.seed + 7919 * round_index)
    batcher = UnitBatcher(samples, config.pixels_per_unit, config.seed + 104729 * round_index)
    loss_module = UnitLoss(model)
    steps = config.steps
    noise = None
    if config.dp:
        if accountant is None:
            raise ValueError("DP training needs a PrivacyAccountant")
        noise = config.noise_multiplier
        if noise is None:
            noise = calibrated_noise(accountant.target_epsilon, accountant.delta, q,
                                     config.planned_rounds * config.steps, accountant.mechanism)
        steps = accountant.affordable_steps(noise, q, config.steps)
        if steps == 0:
            # budget spent: nothing more is computed on the training units, not even a loss
            return LocalTrainResult(0, float("nan"), accountant.epsilon, noise, q,
                                    budget_exhausted=True)
        # charge first: a crash after this line can only over-count the spent budget
        accountant.record(noise, q, steps, {"round": round_index, "noise": noise, "q": q})
        module = GradSampleModule(loss_module, batch_first=True, loss_reduction="sum")
        noise_seed = (config.seed + 31 * round_index + 1 if config.reproducible_noise
                      else int.from_bytes(os.urandom(8), "little") >> 1)
        generator = torch.Generator().manual_seed(noise_seed)
        optimizer = DPOptimizer(torch.optim.Adam(module.parameters(), lr=config.lr),
                                noise_multiplier=noise, max_grad_norm=config.max_grad_norm,
                                expected_batch_size=max(1, round(q * n)), loss_reduction="mean",
                                generator=generator)
        sampler = UniformWithReplacementSampler(num_samples=n, sample_rate=q, generator=generator,
                                                steps=steps)
        with warnings.catch_warnings():
            # Opacus' hooks fire on module outputs because pixel features never need gradients
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            for indices in sampler:
                optimizer.zero_grad()
                loss = module(batcher.batch(np.asarray(indices, dtype=np.int64))).sum()
                loss.backward()
                optimizer.step()
                clamp_parameters(model)
        module._close()
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        rng = np.random.default_rng(config.seed + 13 * round_index)
        for _ in range(steps):
            units = np.flatnonzero(rng.random(n) < q)
            if units.size == 0:
                continue
            optimizer.zero_grad()
            loss = loss_module(batcher.batch(units)).mean()
            loss.backward()
            optimizer.step()
            clamp_parameters(model)
    return LocalTrainResult(steps, evaluate_loss(model, samples, batcher),
                            accountant.epsilon if (config.dp and accountant) else None, noise, q)


@torch.no_grad()
def evaluate_loss(model: NeuralPredictor, samples: UnitSamples, batcher: UnitBatcher | None = None,
                  max_units: int = 256) -> float:
    """Mean float code length (bits/pixel) over up to ``max_units`` units."""
    batcher = batcher or UnitBatcher(samples, 64, 0)
    units = np.arange(min(samples.n_units, max_units))
    if units.size == 0:
        return math.nan
    return float(UnitLoss(model)(batcher.batch(units)).mean())


def integer_bits(model: NeuralPredictor, samples: UnitSamples) -> float:
    """Bits/pixel of every sampled pixel under the quantised networks and the logistic tables.

    This is what the codec would spend on these pixels with the weights the federation produces
    (count tables stay parametric: fitting them would need pixel histograms from the sites).
    """
    weights = to_integer(model, logistic_counts(), {"name": "federated"})
    total, count = 0.0, 0
    for key, pool in samples.pools.items():
        n = int(pool.counts.sum())
        if n == 0:
            continue
        total += estimated_bits(weights, pool.arrays, key) * n
        count += n
    return total / max(1, count)
