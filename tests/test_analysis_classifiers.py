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


def test_the_resnet_on_latents_has_the_pixel_baselines_capacity_and_learns() -> None:
    """Equal capacity (issue 15): the same stages, a 1x1 stem; both end on an 8x8 grid."""
    from fedcodec.shared.analysis.classifier import PIXEL, RESNET, build_classifier

    pixel = build_classifier(ClassifierConfig(PIXEL, 1, width=32, arch=RESNET))
    latent = build_classifier(ClassifierConfig(LATENT, 64, width=32, arch=RESNET))
    assert abs(latent.parameter_count() / pixel.parameter_count() - 1) < 0.01
    assert latent.net[:-4](torch.zeros(1, 64, 32, 32)).shape == (1, 128, 8, 8)
    assert pixel.net[:-4](torch.zeros(1, 1, 128, 128)).shape == (1, 128, 8, 8)
    rng = np.random.default_rng(0)
    y = np.arange(36) % 3
    x = (rng.normal(size=(36, 8, 8, 8)) + 2.0 * y[:, None, None, None]).astype(np.float32)
    model, history = train_classifier(
        ClassifierConfig(LATENT, 8, width=8, arch=RESNET), x, y, x, y,
        TrainConfig(epochs=8, batch_size=12, flip=True, shift=1), progress=False)
    assert float(model.input_scale.min()) != 1.0  # fitted per channel like every latent path
    assert (predict(model, x) == y).mean() > 0.9
