"""The hyper-synthesis in integers: the same entropy parameters on every machine.

The decoder must rebuild each latent's table index (and mean) bit for bit, so ``h_s`` runs here
in fixed point, never in float torch. Activations are Q8 integers, weights Q12, biases Q20; every
3x3 convolution is one matrix product of integer-valued float64 arrays. While every partial sum
stays below 2**53 each is an exact integer, whatever the summation order, thread count, SIMD or
FMA use of the BLAS: ``|activation| <= 2**20``, ``|weight| <= 2**16`` and ``fan-in <= 2**12``
give at most 2**48. Division by 2**12 is exact in float64 and ``floor`` makes an integer again.
The encoder runs the very same function, so the training model's float ``h_s`` only has to be
close to this one (the rounding costs a negligible amount of rate), not equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fedcodec.shared.learned_lossy.entropy_tables import Q8

QW = 12
MAX_ACTIVATION = 1 << 20
MAX_WEIGHT = 1 << 16
MAX_FAN_IN = 1 << 12
Z_CLAMP = 1 << 10
"""Decoded z values are clamped here before the network (keeps Q8 inputs inside the bound)."""


def _im2col3x3(x: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H*W, C*9) with zero padding, columns ordered like torch's (c, ky, kx)."""
    c, h, w = x.shape
    p = np.zeros((c, h + 2, w + 2), dtype=np.float64)
    p[:, 1:-1, 1:-1] = x
    cols = np.empty((c, 9, h, w), dtype=np.float64)
    for ky in range(3):
        for kx in range(3):
            cols[:, ky * 3 + kx] = p[:, ky : ky + h, kx : kx + w]
    return cols.reshape(c * 9, h * w).T


def _pixel_shuffle(x: np.ndarray, r: int = 2) -> np.ndarray:
    """torch.nn.functional.pixel_shuffle for one (C*r*r, H, W) array."""
    c4, h, w = x.shape
    c = c4 // (r * r)
    return x.reshape(c, r, r, h, w).transpose(0, 3, 1, 4, 2).reshape(c, h * r, w * r)


@dataclass
class IntegerConv:
    weight: np.ndarray
    """(C_in*9, C_out) float64 holding integers (Q12)."""
    bias: np.ndarray
    """(C_out,) float64 holding integers (Q20)."""

    def __post_init__(self) -> None:
        if self.weight.shape[0] > MAX_FAN_IN or np.abs(self.weight).max() > MAX_WEIGHT:
            raise ValueError("hyper-synthesis weights outside the exact-arithmetic bounds")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(C_in, H, W) Q8 integers -> (C_out, H, W) Q8 integers (floor)."""
        _, h, w = x.shape
        y = _im2col3x3(x) @ self.weight
        y += self.bias
        y = np.floor(y * (1.0 / (1 << QW)))
        return y.T.reshape(-1, h, w)

    @classmethod
    def from_float(cls, weight: np.ndarray, bias: np.ndarray) -> IntegerConv:
        """From torch's (C_out, C_in, 3, 3) weight and (C_out,) bias."""
        w = np.clip(np.round(weight.astype(np.float64) * (1 << QW)), -MAX_WEIGHT, MAX_WEIGHT)
        b = np.round(bias.astype(np.float64) * (1 << (QW + Q8)))
        return cls(w.reshape(w.shape[0], -1).T.copy(), b)


@dataclass
class IntegerHyperSynthesis:
    """conv0, ReLU, conv1+shuffle, ReLU, conv2+shuffle, ReLU, conv3 -> (mean Q8, log2 scale Q8)."""

    convs: list[IntegerConv]
    m: int

    def __call__(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``z``: (nz, h, w) integers -> two (m, 4h, 4w) int64 arrays: mean, log2 scale (Q8)."""
        x = np.clip(z.astype(np.float64), -Z_CLAMP, Z_CLAMP) * (1 << Q8)
        c0, c1, c2, c3 = self.convs
        x = np.clip(c0(x), 0.0, MAX_ACTIVATION)
        x = np.clip(_pixel_shuffle(c1(x)), 0.0, MAX_ACTIVATION)
        x = np.clip(_pixel_shuffle(c2(x)), 0.0, MAX_ACTIVATION)
        out = np.clip(c3(x), -MAX_ACTIVATION, MAX_ACTIVATION).astype(np.int64)
        return out[: self.m], out[self.m :]
