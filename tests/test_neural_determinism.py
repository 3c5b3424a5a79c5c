"""Bit-exact decoding across processes and thread counts, and the exact fixed-point arithmetic.

The decoder must rebuild the coder's probabilities exactly. Here one process encodes with one
thread everywhere (OMP, OpenBLAS, torch) and another decodes with two; the streams also have to
be byte-identical when the second process encodes, with the encoder's choices on (references
checked per slice, classical fallback, scale adaptation, value ranges, mean corrections,
progressive refinement layers with their own choices, level bounds) and
with the learned coder alone.
The fixed-point layer is checked against an int64 reference at the extreme values its bounds
allow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import run_with_threads
from test_neural_safety import _interpolated
from fedcodec.shared.neural.fixed_point import (
    ACT_LIMIT,
    BIAS_LIMIT,
    MAX_FAN_IN,
    QW,
    WEIGHT_LIMIT,
    exact_layer,
    ilog2_q6,
)


_SCRIPT = r"""
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
from fedcodec.shared.codecs.base import get_codec
work = sys.argv[1]
inputs = np.load(work + "/input.npz")
out = {}
for spec in ("neural", "neural:mode=near-lossless,tau=2", "neural:fallback=0",
             "neural:tau=24,centroid=1,coarse=0.7,fallback=0"):
    codec = get_codec(spec)
    streams = codec.encode_volume(inputs["volume"], 12)
    streams.append(codec.encode(inputs["odd"], 16))
    streams.append(codec.encode(inputs["interpolated"], 12))
    key = spec.replace(":", "_").replace("=", "_").replace(",", "_")
    assert "coarse" not in spec or 0xAA in {s[0] for s in streams}  # level bounds coded
    if sys.argv[3] == "encode":
        np.save(f"{work}/{key}.npy", np.array(streams, dtype=object), allow_pickle=True)
    else:
        theirs = list(np.load(f"{work}/{key}.npy", allow_pickle=True))
        assert theirs == streams, "encoders in two processes wrote different bytes"
        volume = codec.decode_volume(theirs[:-2])
        odd = codec.decode(theirs[-2])
        interpolated = codec.decode(theirs[-1])
        np.savez(f"{work}/{key}_decoded.npz", volume=volume, odd=odd, interpolated=interpolated)
progressive = get_codec("neural:mode=progressive,layers=13-4-0")
layered = np.stack([inputs["interpolated"], inputs["interpolated"][::-1]])
streams = progressive.encode_volume(layered, 12)
if sys.argv[3] == "encode":
    np.save(f"{work}/progressive.npy", np.array(streams, dtype=object), allow_pickle=True)
else:
    theirs = list(np.load(f"{work}/progressive.npy", allow_pickle=True))
    assert theirs == streams, "progressive encoders in two processes wrote different bytes"
    assert 0xA9 in {s[0] for s in theirs}  # refinements with their own choices
    for layer in (1, 2):
        decoded = progressive.decode_layers(theirs[: 2 * layer], layer, partial=True)
        assert np.abs(decoded.astype(np.int64) - layered).max() <= progressive.layers[layer - 1]
    assert np.array_equal(progressive.decode_volume(theirs), layered)
print("ok")
"""


def _run(work: Path, threads: int, action: str) -> None:
    run_with_threads(_SCRIPT, [str(work), str(threads), action], threads)


def test_encode_one_thread_decode_two_threads_other_process(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:96, 0:80]
    anatomy = 1500 + 800 * np.sin(x / 9.0) * np.cos(y / 13.0)
    volume = np.stack([anatomy + rng.normal(0, 20 + 5 * i, anatomy.shape) for i in range(6)])
    volume = np.clip(np.rint(volume), 0, 4095).astype(np.uint16)
    odd = rng.integers(0, 1 << 16, (37, 23)).astype(np.uint16)
    interpolated = _interpolated(np.random.default_rng(3))  # mean corrections (0xA8)
    np.savez(tmp_path / "input.npz", volume=volume, odd=odd, interpolated=interpolated)
    _run(tmp_path, 1, "encode")
    _run(tmp_path, 2, "decode")
    lossless = np.load(tmp_path / "neural_decoded.npz")
    np.testing.assert_array_equal(lossless["volume"], volume)
    np.testing.assert_array_equal(lossless["odd"], odd)
    learned = np.load(tmp_path / "neural_fallback_0_decoded.npz")
    np.testing.assert_array_equal(learned["volume"], volume)
    np.testing.assert_array_equal(learned["interpolated"], interpolated)
    bounded = np.load(tmp_path / "neural_mode_near-lossless_tau_2_decoded.npz")
    assert np.abs(bounded["volume"].astype(np.int64) - volume).max() <= 2
    assert np.abs(bounded["odd"].astype(np.int64) - odd).max() <= 2
    assert np.abs(bounded["interpolated"].astype(np.int64) - interpolated).max() <= 2
    levels = np.load(tmp_path / "neural_tau_24_centroid_1_coarse_0.7_fallback_0_decoded.npz")
    for name, original in (("volume", volume), ("odd", odd), ("interpolated", interpolated)):
        assert np.abs(levels[name].astype(np.int64) - original).max() <= 24  # level bounds


def test_exact_layer_matches_int64_at_the_bounds() -> None:
    rng = np.random.default_rng(0)
    n, fan_in, fan_out = 3000, MAX_FAN_IN, 32
    # worst case magnitudes: every product at its limit with one sign, plus random ones
    x = rng.choice([-ACT_LIMIT, ACT_LIMIT], (n, fan_in)).astype(np.int64)
    x[n // 2 :] = rng.integers(-ACT_LIMIT, ACT_LIMIT + 1, (n - n // 2, fan_in))
    w = rng.choice([-WEIGHT_LIMIT, WEIGHT_LIMIT], (fan_in, fan_out)).astype(np.int64)
    w[:, fan_out // 2 :] = rng.integers(-WEIGHT_LIMIT, WEIGHT_LIMIT + 1, (fan_in, fan_out - fan_out // 2))
    x[0] = ACT_LIMIT
    w[:, 0] = WEIGHT_LIMIT
    b = rng.integers(-BIAS_LIMIT, BIAS_LIMIT + 1, fan_out)
    expected = (x @ w + b) >> QW
    got = exact_layer(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), hidden=False)
    np.testing.assert_array_equal(got.astype(np.int64), expected)
    hidden = exact_layer(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), hidden=True)
    np.testing.assert_array_equal(hidden.astype(np.int64), np.clip(expected, 0, ACT_LIMIT))


def test_integer_log2() -> None:
    values = np.arange(1, 1 << 17)
    logs = ilog2_q6(values)
    assert np.all(np.diff(logs) >= 0)
    assert np.abs(logs - 64 * np.log2(values)).max() < 1.5
    assert ilog2_q6(np.array([1 << 40]))[0] == 40 * 64 + 1
