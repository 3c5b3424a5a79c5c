"""Settings of one training run (``fedcodec train`` options), and which of them fix the result."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from fedcodec.shared.neural.train import TrainSettings

RECIPE_FIELDS = ("holdout", "seed", "hidden", "depth", "epochs", "batch", "lr", "fraction",
                 "series_pixels", "max_steps", "min_steps", "budget_seconds", "split_mosaics")
"""Options that change the trained weights; a ``--resume`` must repeat them."""


@dataclass
class TrainConfig:
    """Defaults: the recipe of the shipped ``neural_v1`` weights (see shared/neural/weights)."""

    out: Path
    holdout: float = 0.2
    seed: int = 0
    hidden: int = 48
    depth: int = 2
    epochs: int = 25
    batch: int = 4096
    lr: float = 3e-3
    fraction: float = 1 / 8
    """Share of every pyramid group's pixels sampled for training."""
    series_pixels: int = 1 << 21
    """At most this many pixels per series (slices drawn at random)."""
    max_steps: int = 3000
    min_steps: int = 1500
    budget_seconds: float = 1800.0
    """Training time budget; a network far behind its share is shortened (see train_predictor)."""
    threads: int = 2
    checkpoint_every: int = 200
    log_every: int = 10
    split_mosaics: bool = True
    resume: bool = False
    tracking_uri: str | None = None
    """None: sqlite in ``out``; "": no MLflow."""
    experiment: str = "fedcodec-train"
    progress: bool = True
    compare_slices: int = 4
    """Held-out slices really coded with the new weights and with JPEG XL at the end (0: skip)."""
    feature_set: int = 1
    """Context layout of the networks (``shared/neural/features.FEATURE_SETS``)."""
    augment: bool = False
    """Also sample transposed, 8-bit and half-size copies of the training series
    (``shared/neural/augment``), a quarter of ``series_pixels`` each."""
    augment_noise: bool = False
    """Also sample a copy of each training series with about twice its noise
    (``augment.noisier``), a quarter of ``series_pixels``: measured -0.2 % lossless and -0.4 %
    at tau=2 pooled over the leave-one-source-out folds (docs/neural-codec.md)."""

    def recipe(self) -> dict:
        values = asdict(self)
        recipe = {name: values[name] for name in RECIPE_FIELDS}
        if self.feature_set != 1:  # absent means set 1, so checkpoints from before still resume
            recipe["feature_set"] = self.feature_set
        if self.augment:  # likewise: absent means no augmentation
            recipe["augment"] = True
        if self.augment_noise:
            recipe["augment_noise"] = True
        return recipe

    def settings(self) -> TrainSettings:
        return TrainSettings(hidden=self.hidden, depth=self.depth, epochs=self.epochs,
                             batch=self.batch, lr=self.lr, seed=self.seed,
                             time_budget_s=self.budget_seconds, max_steps=self.max_steps,
                             min_steps=self.min_steps)
