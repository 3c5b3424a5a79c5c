"""Train and evaluate the classifiers and the encrypted-inference heads (plain functions).

``fedcodec analyze train|eval`` and ``experiments/analysis_tumour.py`` call these; tests call
them on a handful of images. Every path gets the same budget: same trunk, optimiser, batch size,
epochs and seed; the epoch with the best validation accuracy is kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fedcodec.shared.analysis.classifier import (
    ClassifierConfig,
    LatentStatsNet,
    TumourClassifier,
    build_classifier,
)
from fedcodec.shared.analysis.heads import LINEAR, POLY_MLP, Head

Classifier = TumourClassifier | LatentStatsNet


@dataclass(frozen=True)
class TrainConfig:
    """The training budget every classifier path gets."""

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    flip: bool = False
    """Random left-right mirroring (of pixels, or of the latent grid) during training."""
    shift: int = 0
    """Random translation by up to this many pixels / grid cells (circular), per batch."""
    patience: int = 0
    """Early stopping: stop after this many epochs without a better validation accuracy (0: off)."""
    threads: int = 1
    """1: on a shared 2-core machine, 2 intra-op threads were 2-6x slower (spin-waiting)."""


def _as_input(array: np.ndarray) -> torch.Tensor:
    """(N, H, W) pixels get a channel axis; (N, C, h, w) latents pass through."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.unsqueeze(1) if tensor.ndim == 3 else tensor


def fit_latent_scale(model: Classifier, latents: np.ndarray) -> None:
    """Per-channel 1/std of the training latents (and, for the statistics nets, the mean/std
    of the pooled statistics), stored in the model (saved with it)."""
    std = latents.astype(np.float32).std(axis=(0, 2, 3))
    model.input_scale.copy_(torch.from_numpy(1.0 / np.maximum(std, 1e-3)))
    if isinstance(model, LatentStatsNet):
        sample = latents[:: max(1, len(latents) // 2048)]  # at most ~2k slices
        model.fit_statistics(torch.from_numpy(np.ascontiguousarray(sample)))


def train_classifier(
    config: ClassifierConfig,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    budget: TrainConfig = TrainConfig(),
    *,
    description: str = "train",
    progress: bool = True,
    on_epoch: Callable[[int, Classifier, Classifier], None] | None = None,
) -> tuple[Classifier, list[dict]]:
    """AdamW + one-cycle schedule for ``budget.epochs``; returns the best-on-validation model.

    ``on_epoch(epoch, model, best_so_far)`` is called after every epoch (checkpoint curves along
    one run: the best-on-validation model *up to* that epoch is what early stopping there gives).
    """
    torch.manual_seed(budget.seed)
    torch.set_num_threads(budget.threads)
    model = build_classifier(config)
    if config.kind == "latent":
        fit_latent_scale(model, train_x)
    model.train()
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=budget.learning_rate, weight_decay=budget.weight_decay
    )
    steps = budget.epochs * max(1, -(-len(train_x) // budget.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=budget.learning_rate, total_steps=steps, pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = np.random.default_rng(budget.seed)
    history: list[dict] = []
    best_state, best_acc, best_epoch = copy.deepcopy(model.state_dict()), -1.0, 0
    labels = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    for epoch in range(budget.epochs):
        model.train()
        order = generator.permutation(len(train_x))
        total = 0.0
        batches = range(0, len(order), budget.batch_size)
        for start in tqdm(batches, desc=f"{description} {epoch + 1}/{budget.epochs}",
                          disable=not progress, leave=False):
            idx = np.sort(order[start : start + budget.batch_size])
            batch = _as_input(train_x[idx])
            if budget.flip:  # left-right mirror half the batch (same rule for every path)
                mirror = torch.from_numpy(generator.random(len(idx)) < 0.5)
                batch = torch.where(mirror.view(-1, 1, 1, 1), batch.flip(-1), batch)
            if budget.shift:
                dy, dx = (int(v) for v in generator.integers(-budget.shift, budget.shift + 1, 2))
                batch = torch.roll(batch, shifts=(dy, dx), dims=(-2, -1))
            logits = model(batch)
            loss = loss_fn(logits, labels[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
        val_acc = float((predict(model, val_x) == np.asarray(val_y)).mean()) if len(val_x) else 0.0
        history.append({"epoch": epoch + 1, "loss": total / len(train_x), "val_accuracy": val_acc})
        if val_acc > best_acc:
            best_acc, best_state, best_epoch = val_acc, copy.deepcopy(model.state_dict()), epoch
        if on_epoch is not None:
            best = copy.deepcopy(model)
            best.load_state_dict(best_state)
            best.eval()
            on_epoch(epoch + 1, model, best)
        if budget.patience and epoch - best_epoch >= budget.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return model, history


@torch.no_grad()
def predict(model: Classifier, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class index per input."""
    model.eval()
    out = [
        model(_as_input(inputs[i : i + batch_size])).argmax(dim=1).numpy()
        for i in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class HeadBudget:
    """Training of the encrypted-inference heads on pooled features (small, full batch)."""

    epochs: int = 400
    learning_rate: float = 0.01
    weight_decay: float = 1e-2
    hidden: int = 16
    seed: int = 0


def fit_head(
    kind: str,
    train_f: np.ndarray,
    train_y: np.ndarray,
    val_f: np.ndarray,
    val_y: np.ndarray,
    *,
    class_names: tuple[str, ...],
    pooling: str,
    latent_codec: str,
    latent_model_hash: str = "",
    budget: HeadBudget = HeadBudget(),
) -> Head:
    """Fit a linear or square-activation head on standardised features, then fold the scaling.

    The folded head evaluates raw pooled features: ``W' = W / s``, ``b' = b - (m / s) W``.
    """
    torch.manual_seed(budget.seed)
    mean = train_f.mean(axis=0)
    std = np.maximum(train_f.std(axis=0), 1e-6)
    x = torch.from_numpy(((train_f - mean) / std).astype(np.float32))
    xv = torch.from_numpy(((val_f - mean) / std).astype(np.float32))
    y = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    classes = len(class_names)
    features = train_f.shape[1]
    if kind == LINEAR:
        net: nn.Module = nn.Linear(features, classes)
    elif kind == POLY_MLP:
        net = _SquareMlp(features, budget.hidden, classes)
    else:
        raise ValueError(kind)
    optimiser = torch.optim.Adam(net.parameters(), lr=budget.learning_rate,
                                 weight_decay=budget.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    best_state, best_acc = copy.deepcopy(net.state_dict()), -1.0
    for epoch in range(budget.epochs):
        net.train()
        loss = loss_fn(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if epoch % 10 == 9 or epoch == budget.epochs - 1:
            with torch.no_grad():
                acc = float((net(xv).argmax(1).numpy() == np.asarray(val_y)).mean())
            if acc > best_acc:
                best_acc, best_state = acc, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    scale = 1.0 / std
    if kind == LINEAR:
        w = net.weight.detach().double().numpy().T
        b = net.bias.detach().double().numpy()
        weights = {"W": w * scale[:, None], "b": b - (mean * scale) @ w}
    else:
        w1 = net.hidden.weight.detach().double().numpy().T
        b1 = net.hidden.bias.detach().double().numpy()
        weights = {
            "W1": w1 * scale[:, None],
            "b1": b1 - (mean * scale) @ w1,
            "W2": net.out.weight.detach().double().numpy().T,
            "b2": net.out.bias.detach().double().numpy(),
        }
    return Head(kind, weights, class_names, pooling, latent_codec, latent_model_hash,
                feature_mean=mean, feature_std=std)


class _SquareMlp(nn.Module):
    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(features, hidden)
        self.out = nn.Linear(hidden, classes)
        with torch.no_grad():
            self.hidden.weight.mul_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x) ** 2)
