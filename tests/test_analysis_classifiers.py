"""The latent classifier architectures: shapes, same-budget training, model-file round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedcodec.client.analysis.model_files import load_classifier, save_classifier
from fedcodec.client.analysis.training import TrainConfig, predict, train_classifier
from fedcodec.shared.analysis.classifier import (
    ARCHS,
    DEFAULT_LATENT_ARCH,
    LATENT,
    PIXEL,
    ClassifierConfig,
    build_classifier,
    channel_statistics,
)


def _latents(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class c has channel c shifted: learnable from the grid statistics."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, 8, 4, 4)).astype(np.float16)
    for i, c in enumerate(labels):
        x[i, c] += 3
    return x, labels


@pytest.mark.parametrize("arch", ARCHS)
def test_every_latent_arch_trains_and_round_trips(arch, tmp_path) -> None:
    x, y = _latents(48)
    config = ClassifierConfig(LATENT, 8, width=16, arch=arch)
    model, history = train_classifier(config, x, y, x, y, TrainConfig(epochs=3, batch_size=8),
                                      progress=False)
    assert len(history) == 3
    assert predict(model, x).shape == (48,)
    save_classifier(tmp_path / "c.pt", model, {"arch": arch})
    loaded, meta = load_classifier(tmp_path / "c.pt")
    assert meta == {"arch": arch} and loaded.config.arch == arch
    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))


def test_default_arch_and_pixel_only_trunk() -> None:
    assert DEFAULT_LATENT_ARCH in ARCHS
    with pytest.raises(ValueError, match="latents only"):
        build_classifier(ClassifierConfig(PIXEL, 1, arch="stats-mlp"))
    with pytest.raises(ValueError, match="arch"):
        build_classifier(ClassifierConfig(LATENT, 8, arch="nope"))


def test_channel_statistics() -> None:
    x = torch.tensor([[[[1.0, -3.0]], [[2.0, 2.0]]]])  # (1, 2, 1, 2)
    stats = channel_statistics(x)
    torch.testing.assert_close(stats, torch.tensor([[-1.0, 2.0, 2.0, 2.0, 2.0, 0.0, 1.0, 2.0]]))


def test_pixel_resnet_baseline_trains_with_shifts_and_early_stopping() -> None:
    from fedcodec.shared.analysis.classifier import PIXEL, RESNET, build_classifier

    rng = np.random.default_rng(0)
    y = np.arange(24) % 3
    x = (rng.random((24, 32, 32)) * 60 + 60 * y[:, None, None]).astype(np.uint8)
    seen = []
    model, history = train_classifier(
        ClassifierConfig(PIXEL, 1, width=8, arch=RESNET), x, y, x, y,
        TrainConfig(epochs=6, batch_size=8, flip=True, shift=2, patience=2), progress=False,
        on_epoch=lambda epoch, _m, best: seen.append((epoch, predict(best, x).shape)),
    )
    assert [e for e, _ in seen] == [h["epoch"] for h in history] and len(history) <= 6
    assert all(shape == (24,) for _, shape in seen)
    with pytest.raises(ValueError, match="pixel baseline"):
        build_classifier(ClassifierConfig(LATENT, 8, arch=RESNET))
