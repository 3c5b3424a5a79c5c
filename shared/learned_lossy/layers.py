"""Buffer-free building blocks, so the model trains under Opacus (DP-SGD) unchanged.

:class:`Gdn` is generalised divisive normalisation (Ballé et al. 2016):
``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`` (inverse: multiply). Its parameters must stay
positive; CompressAI keeps a ``pedestal`` *buffer* and a custom autograd lower bound. Here the
reparametrisation is plain functions of the parameters (square, then clamp), so the module holds
only ``nn.Parameter`` s and Opacus' validator and per-sample gradients (functorch) accept it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_PEDESTAL = 2.0**-36
_BETA_MIN = 1e-6
_GAMMA_INIT = 0.1


def _reparam(param: torch.Tensor, minimum: float) -> torch.Tensor:
    """``max(param, sqrt(minimum + pedestal))^2 - pedestal``: positive, smooth above the floor."""
    bound = (minimum + _PEDESTAL) ** 0.5
    return torch.clamp(param, min=bound) ** 2 - _PEDESTAL


class Gdn(nn.Module):
    """GDN (``inverse=False``) or IGDN (``inverse=True``) over ``channels`` feature maps."""

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + _PEDESTAL))
        self.gamma = nn.Parameter(torch.sqrt(_GAMMA_INIT * torch.eye(channels) + _PEDESTAL))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        beta = _reparam(self.beta, _BETA_MIN)
        gamma = _reparam(self.gamma, 0.0).reshape(channels, channels, 1, 1)
        norm = F.conv2d(x * x, gamma, beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
