"""The three classifiers compared in compressed-domain analysis, built on one shared trunk.

Same budget by construction: every path ends in the same :class:`Trunk` (two 3x3 convolutions, a
strided one, global average pooling, a linear layer) at the latent grid (1/16 of the image). Only
the *stem* that brings the input to that grid differs:

* latents ``y_hat`` (C, H/16, W/16): a 1x1 convolution (C -> width);
* pixels (1, H, W), original or decoded: two patchifying convolutions (4x4 stride 4, then 4x4
  stride 4) with a ReLU between: 1 -> width/2 -> width channels.

Inputs are normalised inside the model (pixels by 255, latents by a per-channel scale fitted on
the training set) so a saved model is self-contained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

LATENT = "latent"
PIXEL = "pixel"
KINDS = (LATENT, PIXEL)


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of one classifier: its input kind, input channels and trunk width."""

    kind: str
    in_channels: int
    width: int = 48
    classes: int = 3
    dropout: float = 0.2

    def to_json(self) -> dict:
        return asdict(self)


class Trunk(nn.Module):
    """The part every path shares: features at the latent grid -> class logits."""

    def __init__(self, width: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(8, width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(8, width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(width, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TumourClassifier(nn.Module):
    """Stem (per input kind) + :class:`Trunk`; ``forward`` takes raw values, returns logits."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        if config.kind not in KINDS:
            raise ValueError(f"classifier kind must be one of {KINDS}, got {config.kind!r}")
        self.config = config
        w = config.width
        if config.kind == LATENT:
            self.stem = nn.Sequential(nn.Conv2d(config.in_channels, w, 1), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(config.in_channels, w // 2, 4, stride=4),
                nn.ReLU(inplace=True),
                nn.Conv2d(w // 2, w, 4, stride=4),
                nn.ReLU(inplace=True),
            )
        # Fitted on the training set (latents) or fixed (pixels: 1/255); saved with the weights.
        self.register_buffer("input_scale", torch.ones(config.in_channels))
        self.trunk = Trunk(w, config.classes, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * self.input_scale.view(1, -1, 1, 1)
        return self.trunk(self.stem(x))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_classifier(config: ClassifierConfig) -> TumourClassifier:
    model = TumourClassifier(config)
    if config.kind == PIXEL:
        model.input_scale.fill_(1.0 / 255.0)
    return model
