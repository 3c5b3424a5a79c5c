"""Training the learned lossy codec: plain functions, CPU, bounded in time, resumable.

Warm start across lambda: :func:`train` first fits the middle rate point alone (``warm_fraction``
of the steps), then samples a quality per crop uniformly, so every other rate point starts from
a network that already codes images; the per-quality gains are initialised at
``sqrt(lambda / lambda_mid)`` (quantisation step ~ 1/sqrt(lambda) at high rate). Continuing from
a checkpoint (``model`` argument) is the same warm start across runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fedcodec.shared.learned_lossy.model import MeanScaleHyperprior
from fedcodec.shared.learned_lossy.normalisation import normalise, slice_range


@dataclass
class TrainConfig:
    steps: int = 2000
    batch: int = 8
    crop: int = 128
    lr: float = 3e-4
    warm_fraction: float = 0.25
    time_budget_s: float = 1200.0
    log_every: int = 25
    checkpoint_every: int = 100
    seed: int = 0


class CropSampler:
    """Random normalised crops: a series uniformly, a slice of it uniformly, a crop uniformly.

    Series are drawn uniformly (not slices) so the 680-slice DTI series does not drown the rest.
    Slices smaller than the crop are edge-padded, as the codec pads.
    """

    def __init__(self, volumes: Sequence[np.ndarray], crop: int, seed: int = 0) -> None:
        self.volumes = [v for v in volumes if v.shape[0]]
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def crop_one(self) -> np.ndarray:
        volume = self.volumes[self.rng.integers(len(self.volumes))]
        for _ in range(8):  # skip flat slices (all background)
            image = volume[self.rng.integers(volume.shape[0])]
            lo, hi = slice_range(image)
            if hi - lo > 8:
                break
        c = self.crop
        pr, pc = max(0, c - image.shape[0]), max(0, c - image.shape[1])
        if pr or pc:
            image = np.pad(image, ((0, pr), (0, pc)), mode="edge")
        r = self.rng.integers(image.shape[0] - c + 1)
        k = self.rng.integers(image.shape[1] - c + 1)
        out = normalise(image[r : r + c, k : k + c], lo, hi)
        if self.rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def batch(self, size: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.crop_one() for _ in range(size)])[:, None])


def psnr_normalised(mse: float) -> float:
    return 10.0 * math.log10(1.0 / max(mse, 1e-20))


def train(model: MeanScaleHyperprior, sampler: CropSampler, cfg: TrainConfig,
          checkpoint: Path | None = None, log_path: Path | None = None,
          start_step: int = 0) -> list[dict]:
    """Adam on ``bpp + lambda_q * MSE``; returns the training curve (one row per log interval).

    ``start_step > 0`` continues a run (skips the single-lambda warm phase if it is over).
    """
    torch.manual_seed(cfg.seed + start_step)
    lambdas = torch.tensor(model.cfg.lambdas)
    q_count = model.cfg.qualities
    mid = q_count // 2
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    warm_steps = int(cfg.warm_fraction * cfg.steps)
    curve: list[dict] = []
    acc: dict[str, list[float]] = {}
    started = time.perf_counter()
    model.train()
    step = start_step
    for step in range(start_step, cfg.steps):
        lr = cfg.lr * (0.1 if step > 0.9 * cfg.steps else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        x = sampler.batch(cfg.batch)
        if step < warm_steps:
            q = torch.full((cfg.batch,), mid, dtype=torch.long)
        else:
            q = torch.randint(0, q_count, (cfg.batch,))
        out = model(x, q)
        mse = ((out["x_hat"] - x) ** 2).mean(dim=(1, 2, 3))
        loss = (out["bpp"] + lambdas[q] * mse).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        acc.setdefault("loss", []).append(float(loss))
        for i in range(cfg.batch):
            acc.setdefault(f"bpp_q{int(q[i]) + 1}", []).append(float(out["bpp"][i]))
            acc.setdefault(f"psnr_q{int(q[i]) + 1}", []).append(psnr_normalised(float(mse[i])))
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            row = {"step": done, "seconds": round(time.perf_counter() - started, 1)}
            row.update({k: round(float(np.mean(v)), 4) for k, v in sorted(acc.items())})
            curve.append(row)
            acc = {}
            if log_path is not None:
                with log_path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_checkpoint(model, checkpoint, done)
        if time.perf_counter() - started > cfg.time_budget_s:
            break
    if checkpoint is not None:
        save_checkpoint(model, checkpoint, step + 1)
    return curve


def save_checkpoint(model: MeanScaleHyperprior, path: Path, step: int) -> None:
    """Atomic (temp + rename) float checkpoint with the step count."""
    tmp = path.with_suffix(".tmp")
    torch.save({"state": model.state_dict(), "step": step, "cfg": model.cfg}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[MeanScaleHyperprior, int]:
    data = torch.load(path, weights_only=False)
    model = MeanScaleHyperprior(data["cfg"])
    state = dict(data["state"])
    for old, new in (("log_gain", "gain"), ("log_inverse_gain", "inverse_gain")):
        if old in state:  # checkpoints from before the gains became Linear layers
            state[f"{new}.log_gain.weight"] = state.pop(old).T.contiguous()
    for key in [k for k in state if k.startswith("z_prior.") and k.count(".") == 2]:
        _, kind, i = key.split(".")  # z_prior.matrices.0 -> z_prior.matrix0 (older layout)
        name = {"matrices": "matrix", "biases": "bias", "factors": "factor"}[kind]
        state[f"z_prior.{name}{i}"] = state.pop(key)
    model.load_state_dict(state)
    return model, int(data["step"])
