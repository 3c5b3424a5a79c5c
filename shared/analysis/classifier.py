"""The three classifiers compared in compressed-domain analysis, built on one shared trunk.

Same budget by construction: every path ends in the same :class:`Trunk` (two 3x3 convolutions, a
strided one, global average pooling, a linear layer) at the latent grid (1/16 of the image). Only
the *stem* that brings the input to that grid differs:

* latents ``y_hat`` (C, H/16, W/16): a 1x1 convolution (C -> width);
* pixels (1, H, W), original or decoded: two patchifying convolutions (4x4 stride 4, then 4x4
  stride 4) with a ReLU between: 1 -> width/2 -> width channels.

Inputs are normalised inside the model (pixels by 255, latents by a per-channel scale fitted on
the training set) so a saved model is self-contained.

Latent-only architectures (``ClassifierConfig.arch``), because the 1/16 latent grid is small and
its per-channel statistics already separate the classes well (a linear head on channel means
reaches ~0.70 where the ``trunk`` CNN reached ~0.60 on the same subset):

* ``trunk``: the shared-trunk model above (the same-architecture comparison);
* ``gn-stats``: GroupNorm convolutions on the grid (1x1, strided 3x3, 3x3: the 3x3s run at
  1/32 of the image, a third of the trunk's cost), global mean and max pooling, concatenated
  with per-channel statistics of the input (mean, mean |.|, std, max) and a small MLP;
* ``stats-mlp``: the per-channel statistics and the MLP alone (no convolution).

The statistics are standardised with the training set's mean and std (buffers fitted by
:func:`fedcodec.client.analysis.training.fit_latent_scale`, saved with the weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

LATENT = "latent"
PIXEL = "pixel"
KINDS = (LATENT, PIXEL)
TRUNK = "trunk"
GN_STATS = "gn-stats"
STATS_MLP = "stats-mlp"
RESNET = "resnet"
ARCHS = (TRUNK, GN_STATS, STATS_MLP)
"""Latent classifier architectures (``analyze train --arch``)."""
PIXEL_ARCHS = (TRUNK, RESNET)
"""Pixel classifiers: the shared-trunk CNN and the standard ResNet baseline."""
DEFAULT_LATENT_ARCH = GN_STATS
"""What ``fedcodec analyze train`` trains (the best latent architecture measured, see
docs/compressed-domain-analysis.md)."""


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of one classifier: its input kind, input channels and trunk width."""

    kind: str
    in_channels: int
    width: int = 48
    classes: int = 3
    dropout: float = 0.2
    arch: str = TRUNK
    """``trunk`` for every kind; latents may also use ``gn-stats`` or ``stats-mlp``."""

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


def channel_statistics(x: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, 4C): per-channel mean, mean |.|, std and max over the grid."""
    flat = x.flatten(2)
    return torch.cat([flat.mean(2), flat.abs().mean(2), flat.std(2, unbiased=False),
                      flat.amax(2)], dim=1)


class LatentStatsNet(nn.Module):
    """``gn-stats`` / ``stats-mlp``: latent grid statistics (+ GroupNorm convolutions) -> MLP."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        c, w = config.in_channels, config.width
        self.register_buffer("input_scale", torch.ones(c))
        self.conv: nn.Module | None = None
        features = 4 * c
        if config.arch == GN_STATS:
            self.conv = nn.Sequential(
                nn.Conv2d(c, w, 1), nn.GroupNorm(8, w), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, stride=2, padding=1), nn.GroupNorm(8, w), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=1), nn.GroupNorm(8, w), nn.ReLU(inplace=True),
            )
            features += 2 * w
        # Standardisation of the statistics, fitted on the training set (like the heads' folded
        # scaling); a per-sample LayerNorm here made training unstable (val. accuracy 0.23-0.56).
        self.register_buffer("stats_mean", torch.zeros(4 * c))
        self.register_buffer("stats_std", torch.ones(4 * c))
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(features, 64), nn.ReLU(inplace=True),
            nn.Dropout(config.dropout), nn.Linear(64, config.classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * self.input_scale.view(1, -1, 1, 1)
        parts = [(self.statistics(x) - self.stats_mean) / self.stats_std]
        if self.conv is not None:
            f = self.conv(x).flatten(2)
            parts += [f.mean(2), f.amax(2)]
        return self.head(torch.cat(parts, dim=1))

    @staticmethod
    def statistics(scaled: torch.Tensor) -> torch.Tensor:
        return channel_statistics(scaled)

    @torch.no_grad()
    def fit_statistics(self, latents: torch.Tensor) -> None:
        """Set the statistics' standardisation from training latents (after ``input_scale``)."""
        stats = self.statistics(latents.float() * self.input_scale.view(1, -1, 1, 1))
        self.stats_mean.copy_(stats.mean(0))
        self.stats_std.copy_(stats.std(0).clamp_min(1e-3))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


class _Residual(nn.Module):
    """Two 3x3 convolutions (BatchNorm, ReLU) with a projected shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.skip = (nn.Identity() if cin == cout and stride == 1 else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class PixelResNet(nn.Module):
    """The standard pixel baseline (issue 15): a small ResNet on (resized) pixels.

    Stem 3x3 stride 2 (width/2), then three residual stages of widths w, 2w, 4w, each halving
    the resolution, global average pooling, dropout, linear. Pixels are scaled by 1/255 inside.
    ``width`` 32: 0.30 M parameters.

    With ``kind`` latent it is the same network on the latent grid (64 x 32 x 32 for a 512²
    slice): a 1x1 stem (the latents are already features, 16x below the pixels) and a first
    stage that keeps the resolution, so both paths end on an 8 x 8 grid of 4w channels from a
    128² image or its latents. The fair test of "is the latent as good an input", at equal
    capacity: ``gn-stats`` has a quarter of the parameters (issue 15, full-protocol run).
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        latent = config.kind == LATENT
        self.register_buffer("input_scale", torch.full((config.in_channels,),
                                                       1.0 if latent else 1.0 / 255.0))
        stem = (nn.Conv2d(config.in_channels, w // 2, 1, bias=False) if latent else
                nn.Conv2d(config.in_channels, w // 2, 3, 2, 1, bias=False))
        self.net = nn.Sequential(
            stem, nn.BatchNorm2d(w // 2), nn.ReLU(inplace=True),
            _Residual(w // 2, w, 1 if latent else 2), _Residual(w, 2 * w, 2),
            _Residual(2 * w, 4 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(config.dropout),
            nn.Linear(4 * w, config.classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float() * self.input_scale.view(1, -1, 1, 1))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_classifier(config: ClassifierConfig) -> TumourClassifier | LatentStatsNet | PixelResNet:
    if config.arch not in ARCHS + PIXEL_ARCHS:
        raise ValueError(f"classifier arch must be one of {ARCHS + (RESNET,)}, got {config.arch!r}")
    if config.arch == RESNET:
        return PixelResNet(config)
    if config.arch != TRUNK:
        if config.kind != LATENT:
            raise ValueError(f"arch {config.arch!r} is for latents only")
        return LatentStatsNet(config)
    model = TumourClassifier(config)
    if config.kind == PIXEL:
        model.input_scale.fill_(1.0 / 255.0)
    return model
