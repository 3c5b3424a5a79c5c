"""Latents (C, h, w) -> one feature vector per slice, computed at the site before encryption.

``channel-mean+absmean``: for every latent channel, the mean and the mean absolute value over
the grid (2C features). The mean keeps the sign structure the analysis transform learned; the
absolute mean is a per-channel energy, which a linear head cannot derive from the mean. The
result is independent of the image size, so one head serves any matrix.
"""

from __future__ import annotations

import numpy as np

from fedcodec.shared.errors import FedcodecError, UnknownNameError

CHANNEL_MEAN_ABSMEAN = "channel-mean+absmean"
POOLINGS = (CHANNEL_MEAN_ABSMEAN,)


def pool_latents(latents: np.ndarray, pooling: str = CHANNEL_MEAN_ABSMEAN) -> np.ndarray:
    """(C, h, w) -> (2C,) float64 features; also accepts a (N, C, h, w) stack -> (N, 2C)."""
    if pooling not in POOLINGS:
        raise UnknownNameError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")
    y = np.asarray(latents, dtype=np.float64)
    if y.ndim not in (3, 4):
        raise FedcodecError(f"latents must be (C, h, w) or (N, C, h, w), got shape {y.shape}")
    axes = (-2, -1)
    return np.concatenate([y.mean(axis=axes), np.abs(y).mean(axis=axes)], axis=-1)


def feature_count(channels: int, pooling: str = CHANNEL_MEAN_ABSMEAN) -> int:
    if pooling not in POOLINGS:
        raise UnknownNameError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")
    return 2 * channels
