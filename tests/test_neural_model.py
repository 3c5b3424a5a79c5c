"""The trainable model: Opacus accepts it, quantisation mirrors it, training feeds the codec.

The training smoke test runs the whole path on a tiny synthetic volume — sample contexts with the
codec's own feature code, fit a few steps, quantise, fit count tables — then codes the volume
with those weights and checks that the real byte count matches the code length training
estimated (the two walk the same contexts, so they must agree up to rANS overhead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from opacus.validators import ModuleValidator

from fedcodec.shared.neural.codec import NeuralCodec
from fedcodec.shared.neural.model import NeuralPredictor, clamp_parameters, to_integer
from fedcodec.shared.neural.stream_format import unpack
from fedcodec.shared.neural.tables import logistic_counts
from fedcodec.shared.neural.train import (
    build_weights,
    collect_samples,
    estimated_bits,
    train_predictor,
)
from fedcodec.shared.neural.weights import DEFAULT_WEIGHTS, NET_KEYS, NeuralWeights


def test_opacus_accepts_the_training_model_unchanged() -> None:
    model = NeuralPredictor()
    assert ModuleValidator.validate(model, strict=True) == []
    assert list(model.buffers()) == []
    params = sum(p.numel() for p in model.parameters())
    assert params < 100_000
    assert set(model.nets) == set(NET_KEYS)


def test_shipped_weights_load_and_match_the_model_layout() -> None:
    weights = NeuralWeights.load(DEFAULT_WEIGHTS)
    model = NeuralPredictor(weights.meta.get("hidden", 32), weights.meta.get("depth", 2))
    for key in NET_KEYS:
        assert weights.nets[key].fan_in == model.nets[key].hidden[0].in_features
    assert len(weights.model_id) == 4
    assert DEFAULT_WEIGHTS.stat().st_size < 4 << 20


def test_quantised_network_follows_the_float_network() -> None:
    torch.manual_seed(0)
    model = NeuralPredictor(hidden=16)
    for p in model.parameters():
        torch.nn.init.uniform_(p, -0.3, 0.3)
    clamp_parameters(model)
    weights = to_integer(model, logistic_counts(), {})
    rng = np.random.default_rng(0)
    for key in ("B0", "D2"):
        n_in = model.nets[key].hidden[0].in_features
        features = rng.integers(-128, 129, (5000, n_in))
        with torch.no_grad():
            ref = model.nets[key](torch.tensor(features / 16.0, dtype=torch.float32)).numpy()
        mean, log_scale = weights.nets[key](features.T.astype(np.float32))
        # fixed point: outputs in 1/16 units, rounding per layer costs at most a few units
        assert np.abs(mean / 16.0 - ref[:, 0]).max() < 0.5
        assert np.abs(log_scale / 16.0 - ref[:, 1]).max() < 0.5


def test_training_path_feeds_the_codec(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:32, 0:32]
    anatomy = 600 + 300 * np.sin(x / 5.0) + 200 * (y > 16)
    volume = np.clip(np.rint(np.stack([anatomy + rng.normal(0, 8, anatomy.shape)
                                       for _ in range(4)])), 0, 4095).astype(np.uint16)
    samples = collect_samples([(volume, 12)], fraction=1.0, progress=False)
    model, report = train_predictor(samples, hidden=8, epochs=2, batch=256, time_budget_s=30)
    assert all(np.isfinite(v) for v in report.values())
    weights = build_weights(model, samples, {"name": "smoke", "hidden": 8})
    path = tmp_path / "smoke.npz"
    weights.save(path)
    codec = NeuralCodec(weights=str(path), interslice=0, fallback=0)
    streams = codec.encode_volume(volume, 12)
    np.testing.assert_array_equal(codec.decode_volume(streams), volume)
    # every pixel but the 1x1 top was sampled: estimated and real code lengths agree
    arrays = samples["B0"].arrays(), samples["C0"].arrays(), samples["D0"].arrays()
    estimate = sum(estimated_bits(weights, a, k) * a["target"].size
                   for a, k in zip(arrays, ("B0", "C0", "D0")))
    payload_bits = sum(32 * unpack(s)[1].size for s in streams)
    assert abs(payload_bits - estimate) < 0.02 * estimate + 4 * 64
