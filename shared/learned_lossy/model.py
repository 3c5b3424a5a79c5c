"""The float model: a mean-scale hyperprior (Ballé 2018, Minnen 2018) with per-quality gains.

``x`` (one channel, per-slice normalised to [0, 1], minus 0.5) -> ``g_a`` (4 stride-2 convs with
GDN, 16x down) -> ``y`` (M channels) -> times the quality's gain vector -> ``h_a`` -> ``z``
(64x down) -> round -> ``h_s`` -> per-latent mean and log2 scale -> ``y_hat = round(y - mu) + mu``
-> times the inverse gain -> ``g_s`` -> ``x_hat``. ``z`` has a learned factorised prior
(:class:`FactorizedPrior`), ``y`` a Gaussian with the predicted mean and scale.

Variable rate: one network, one gain / inverse-gain vector per quality (Cui et al. 2021), so 8
rate points cost 8 * 2 * M numbers instead of 8 models. ``h_s`` uses only stride-1 convolutions,
ReLU and pixel shuffles so that its integer twin (:mod:`.integer_hyper`) is a few integer matrix
products; the codec runs that twin, never this float ``h_s``, to get the entropy parameters.

DP-trainable: only ``nn.Parameter`` s, no buffers, no normalisation layers
(``opacus.validators.ModuleValidator.validate(model, strict=True)`` is empty), and every module
that holds parameters maps one tensor to one tensor, so Opacus' hooks get per-sample gradients
(Conv2d / Linear rules, functorch for GDN, transposed convs and the factorised prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fedcodec.shared.learned_lossy.layers import Gdn
from torch import nn

LOG2_SCALE_MIN = math.log2(0.11)
LOG2_SCALE_MAX = 8.0
LIKELIHOOD_MIN = 1e-9
DOWNSAMPLE = 64
"""Image sides are padded to a multiple of this (16x for y, 4x more for z)."""


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the networks and the rate points (lambda per quality 1..len(lambdas))."""

    n: int = 64
    m: int = 64
    nz: int = 32
    lambdas: tuple[float, ...] = field(default=tuple(float(2 ** (10 + q)) for q in range(1, 9)))
    """Loss = bits per pixel + lambda * MSE on [0, 1]-normalised pixels."""

    @property
    def qualities(self) -> int:
        return len(self.lambdas)


def _conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2,
                              output_padding=stride - 1)


class FactorizedPrior(nn.Module):
    """Ballé's non-parametric per-channel density (filters 3,3,3), buffer-free.

    ``cdf_logits(v)`` is a monotone function per channel whose sigmoid is the CDF; the likelihood
    of an integer bin is the CDF difference across it. The codec evaluates it once, at weight
    export, into integer count tables, so the decoder never runs it.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3),
                 init_scale: float = 10.0) -> None:
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.layers = len(dims) - 1
        # plain attributes (not ParameterList) so this module is Opacus' trainable leaf
        for i in range(self.layers):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.register_parameter(
                f"matrix{i}", nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.register_parameter(
                f"bias{i}", nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < self.layers - 1:
                self.register_parameter(
                    f"factor{i}", nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def cdf_logits(self, v: torch.Tensor) -> torch.Tensor:
        """``v``: (channels, 1, n) -> (channels, 1, n)."""
        for i in range(self.layers):
            v = torch.matmul(F.softplus(getattr(self, f"matrix{i}")), v) + getattr(self, f"bias{i}")
            if i < self.layers - 1:
                v = v + torch.tanh(getattr(self, f"factor{i}")) * torch.tanh(v)
        return v

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Probability of the unit bin around each value of ``z`` (batch, channels, h, w)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.cdf_logits(v - 0.5)
        upper = self.cdf_logits(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.reshape(c, b, h, w).permute(1, 0, 2, 3).clamp_min(LIKELIHOOD_MIN)


def gaussian_likelihood(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Probability of the unit bin around ``values`` under N(0, scales^2)."""
    v = torch.abs(values)
    upper = torch.special.ndtr((0.5 - v) / scales)
    lower = torch.special.ndtr((-0.5 - v) / scales)
    return (upper - lower).clamp_min(LIKELIHOOD_MIN)


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class QualityGain(nn.Module):
    """Per-quality channel gains ``exp(W @ onehot(q))``: a bias-free Linear on a one-hot input,
    so Opacus computes per-sample gradients with its Linear rule."""

    def __init__(self, log_init: list[float], channels: int) -> None:
        super().__init__()
        self.log_gain = nn.Linear(len(log_init), channels, bias=False)
        with torch.no_grad():
            self.log_gain.weight.copy_(torch.tensor(log_init)[None, :].repeat(channels, 1))

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_gain(onehot))

    def table(self) -> torch.Tensor:
        """(qualities, channels) gains."""
        return torch.exp(self.log_gain.weight.T)


class HyperSynthesis(nn.Module):
    """z -> (mean, log2 scale) of y, with stride-1 convs and pixel shuffles (integer-friendly)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(cfg.nz, cfg.n, 3, padding=1)
        self.conv1 = nn.Conv2d(cfg.n, 4 * cfg.n, 3, padding=1)
        self.conv2 = nn.Conv2d(cfg.n, 4 * cfg.n, 3, padding=1)
        self.conv3 = nn.Conv2d(cfg.n, 2 * cfg.m, 3, padding=1)
        self.m = cfg.m

    def layers(self) -> list[nn.Conv2d]:
        return [self.conv0, self.conv1, self.conv2, self.conv3]

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.conv0(z_hat))
        h = F.relu(F.pixel_shuffle(self.conv1(h), 2))
        h = F.relu(F.pixel_shuffle(self.conv2(h), 2))
        out = self.conv3(h)
        return out[:, : self.m], out[:, self.m :]


class MeanScaleHyperprior(nn.Module):
    """The whole float model; ``forward`` is the training pass (noise/STE quantisation)."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg = cfg
        n, m = cfg.n, cfg.m
        self.g_a = nn.Sequential(_conv(1, n), Gdn(n), _conv(n, n), Gdn(n), _conv(n, n), Gdn(n),
                                 _conv(n, m))
        self.g_s = nn.Sequential(_deconv(m, n), Gdn(n, True), _deconv(n, n), Gdn(n, True),
                                 _deconv(n, n), Gdn(n, True), _deconv(n, 1))
        self.h_a = nn.Sequential(_conv(m, n, 3, 1), nn.ReLU(), _conv(n, n), nn.ReLU(),
                                 _conv(n, cfg.nz))
        self.h_s = HyperSynthesis(cfg)
        self.z_prior = FactorizedPrior(cfg.nz)
        ref = cfg.lambdas[len(cfg.lambdas) // 2]
        init = [0.5 * math.log(lam / ref) for lam in cfg.lambdas]
        # y is multiplied by the gain before rounding: finer steps at higher lambda
        self.gain = QualityGain(init, m)
        self.inverse_gain = QualityGain([-v for v in init], m)

    def gains(self, quality_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        onehot = F.one_hot(quality_index, self.cfg.qualities).to(torch.float32)
        return self.gain(onehot)[:, :, None, None], self.inverse_gain(onehot)[:, :, None, None]

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log2_scale = self.h_s(z_hat)
        scale = torch.exp2(torch.clamp(log2_scale, LOG2_SCALE_MIN, LOG2_SCALE_MAX))
        return mean, scale

    def forward(self, x: torch.Tensor, quality_index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: (batch, 1, H, W) in [-0.5, 0.5], sides multiples of 64."""
        gain, inverse_gain = self.gains(quality_index)
        y = self.g_a(x) * gain
        z = self.h_a(y)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_bits = -torch.log2(self.z_prior(z_noisy)).sum(dim=(1, 2, 3))
        mean, scale = self.entropy_parameters(_round_ste(z))
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_bits = -torch.log2(gaussian_likelihood(y_noisy - mean, scale)).sum(dim=(1, 2, 3))
        y_hat = _round_ste(y - mean) + mean
        x_hat = self.g_s(y_hat * inverse_gain)
        pixels = x.shape[2] * x.shape[3]
        return {"x_hat": x_hat, "bpp": (y_bits + z_bits) / pixels, "z_bpp": z_bits / pixels}

    @torch.no_grad()
    def analysis(self, x: torch.Tensor, quality_index: int) -> torch.Tensor:
        """Gained latent ``y`` (before rounding) for one quality."""
        gain, _ = self.gains(torch.tensor([quality_index]))
        return self.g_a(x) * gain

    @torch.no_grad()
    def synthesis(self, y_hat: torch.Tensor, quality_index: int) -> torch.Tensor:
        _, inverse_gain = self.gains(torch.tensor([quality_index]))
        return self.g_s(y_hat * inverse_gain)
