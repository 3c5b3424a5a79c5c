"""Feature sets of the neural coder: set 1 (the shipped layout) stays byte-for-byte what it was,
set 2 (error feedback: gradient-adjusted prediction, edge direction, signed neighbour error)
decodes bit-exactly in another process with another thread count.

``fixtures/neural_set1_streams.npz`` was written by the code before feature set 2 existed
(commit 5256dd5, the shipped weights of the time, ``neural_v1``; ``neural:fallback=0`` lossless
and tau=2, three 40x36 12-bit slices coded with references).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_with_threads
from fedcodec.shared.codecs.base import get_codec
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural.features import feature_count, group_context, level_noise
from fedcodec.shared.neural.geometry import GROUPS
from fedcodec.shared.neural.train import collect_samples, error_pyramid, samples_feature_set
from fedcodec.shared.neural.weights import IntegerMlp, NeuralWeights, untrained_weights

FIXTURE = Path(__file__).parent / "fixtures" / "neural_set1_streams.npz"


def _streams(data, name: str) -> list[bytes]:
    return [data[k].tobytes() for k in sorted(k for k in data.files if k.startswith(name + "_"))]


def test_set1_streams_written_before_still_decode_and_reencode_identically() -> None:
    data = np.load(FIXTURE)
    volume = data["volume"]
    for name, spec, tau in (("lossless", "neural:fallback=0", 0),
                            ("tau2", "neural:fallback=0,tau=2", 2)):
        codec = get_codec(spec)
        old = _streams(data, name)
        decoded = codec.decode_volume(old)
        assert np.abs(decoded.astype(np.int64) - volume).max() <= tau
        if tau == 0:
            np.testing.assert_array_equal(decoded, volume)
        # the same bytes once the adaptations added after these streams (0xA8) are off
        before = get_codec(f"{spec},truncate=0,meanfit=0,groupscale=0,weights=neural_v1")
        assert before.encode_volume(volume, 12) == old


def _set2_weights(seed: int = 3) -> NeuralWeights:
    """Untrained set-2 networks with a random (non-zero) output layer, so every input counts."""
    rng = np.random.default_rng(seed)
    base = untrained_weights(hidden=8, seed=seed, feature_set=2)
    nets = {}
    for key, net in base.nets.items():
        ws = list(net.weights)
        ws[-1] = np.round(rng.normal(0, 24, ws[-1].shape))
        nets[key] = IntegerMlp(ws, net.biases)
    return NeuralWeights(nets, base.counts, {"name": "set2-test"})


def test_feature_set_follows_the_networks_fan_in() -> None:
    weights = _set2_weights()
    assert weights.feature_set == 2
    assert untrained_weights(hidden=8).feature_set == 1
    assert max(feature_count(g, 2, 2) for g in GROUPS) <= 96  # the exact-arithmetic fan-in bound
    mixed = dict(weights.nets)
    mixed["B0"] = untrained_weights(hidden=8).nets["B0"]
    with pytest.raises(ValueError, match="mix feature sets"):
        NeuralWeights(mixed, weights.counts)


def test_set2_extends_set1_and_stays_in_range() -> None:
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(2000, 300, (33, 29)), 0, 4095).astype(np.int32)
    image[:, 14] = 4095  # a sharp edge
    signed = error_pyramid(image, signed=True)
    errors = error_pyramid(image)
    np.testing.assert_array_equal(errors[0], np.abs(signed[0]))
    noise = level_noise(image[::2, ::2], errors[1])
    ref = [np.roll(image, 1, axis=0)]
    for group in GROUPS:
        one = group_context(image, errors[0], ref, group, 0, noise)
        two = group_context(image, errors[0], ref, group, 0, noise, None, signed[0], 2)
        k = one.features.shape[0]
        assert two.features.shape[0] == k + 3
        np.testing.assert_array_equal(two.features[:k], one.features)
        extra = two.features[k:]
        assert np.abs(extra).max() <= 128 and (extra == np.round(extra)).all()
        assert np.abs(extra).sum(axis=1).min() > 0  # every new input carries information
    volume = image[None].astype(np.uint16)
    assert samples_feature_set(collect_samples([(volume, 12)], 0.5, progress=False,
                                               feature_set=2)) == 2


_SCRIPT = r"""
import sys, numpy as np
from fedcodec.shared.codecs.base import get_codec
work, action = sys.argv[1], sys.argv[2]
inputs = np.load(work + "/input.npz")
for spec in ("neural:fallback=0", "neural:fallback=0,tau=2", "neural:fallback=0,interslice=2"):
    codec = get_codec(spec + ",weights=" + work + "/set2.npz")
    streams = codec.encode_volume(inputs["volume"], 12)
    key = spec.replace(":", "_").replace("=", "_").replace(",", "_")
    if action == "encode":
        np.save(f"{work}/{key}.npy", np.array(streams, dtype=object), allow_pickle=True)
    else:
        theirs = list(np.load(f"{work}/{key}.npy", allow_pickle=True))
        assert theirs == streams, "encoders in two processes wrote different bytes"
        np.save(f"{work}/{key}_decoded.npy", codec.decode_volume(theirs))
print("ok")
"""


def _run(work: Path, threads: int, action: str) -> None:
    run_with_threads(_SCRIPT, [str(work), action], threads)


def test_set2_bit_exact_across_processes_and_threads(tmp_path: Path) -> None:
    _set2_weights().save(tmp_path / "set2.npz")
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:130, 0:72]  # a group of 130 * 72 / 4 > 2048 pixels: split over threads
    anatomy = 1500 + 800 * np.sin(x / 7.0) * np.cos(y / 11.0) + 900 * (x > 40)
    volume = np.stack([anatomy + rng.normal(0, 15 + 5 * i, anatomy.shape) for i in range(3)])
    volume = np.clip(np.rint(volume), 0, 4095).astype(np.uint16)
    np.savez(tmp_path / "input.npz", volume=volume)
    _run(tmp_path, 1, "encode")
    _run(tmp_path, 2, "decode")
    for key, tau in (("neural_fallback_0", 0), ("neural_fallback_0_tau_2", 2),
                     ("neural_fallback_0_interslice_2", 0)):
        decoded = np.load(tmp_path / f"{key}_decoded.npy")
        assert np.abs(decoded.astype(np.int64) - volume).max() <= tau


def test_set2_stream_refused_by_set1_weights(tmp_path: Path) -> None:
    _set2_weights().save(tmp_path / "set2.npz")
    image = (np.arange(24 * 20).reshape(24, 20) * 7 % 4096).astype(np.uint16)
    stream = get_codec(f"neural:fallback=0,weights={tmp_path / 'set2.npz'}").encode(image, 12)
    with pytest.raises(CorruptDataError, match="model"):
        get_codec("neural:fallback=0").decode(stream)


def test_set2_progressive_layers_hold_their_bounds(tmp_path: Path) -> None:
    """Refinement layers (coarse-window coding) with set-2 weights: the signed error map is
    kept through the windowed groups too, and every layer decodes within its bound."""
    from fedcodec.shared.neural.progressive import ProgressiveCodec

    _set2_weights().save(tmp_path / "set2.npz")
    rng = np.random.default_rng(8)
    y, x = np.mgrid[0:40, 0:36]
    anatomy = 1500 + 700 * np.sin(x / 5.0) * np.cos(y / 9.0)
    volume = np.stack([anatomy + rng.normal(0, 20, anatomy.shape) for _ in range(2)])
    volume = np.clip(np.rint(volume), 0, 4095).astype(np.uint16)
    codec = get_codec(f"neural:mode=progressive,layers=13-4-0,weights={tmp_path / 'set2.npz'}")
    assert isinstance(codec, ProgressiveCodec)
    streams = codec.encode_volume(volume, 12)
    for layer, bound in enumerate((13, 4, 0), start=1):
        decoded = codec.decode_layers(streams, layer)
        assert np.abs(decoded.astype(np.int64) - volume).max() <= bound
