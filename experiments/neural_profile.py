"""Where a 256x256 slice's neural encode and decode time goes (cProfile shares).

    nice -n 10 python experiments/neural_profile.py [--slices 10] [--compare-network 8]

GE 3-D T1 slices 40.. (the slices ``neural_speed.py`` times), learned coder alone
(``neural:fallback=0``), one in-slice thread and one worker process, so the profile sees all
the work. Prints each stage's share of the profiled time: decode, encode with references (each
slice coded with and without them: the reference check), encode alone. Shares are what to
read; cProfile's overhead and the machine's load inflate the absolute times.

``--compare-network N``: decode CPU time per slice with the network evaluated as before issue 11's
speed work (``exact_layer`` on the transposed features, then scaled) and as now
(``exact_layer_columns``), N interleaved passes each, same pixels checked.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import cProfile
import os
import pstats
from collections.abc import Callable
from pathlib import Path

os.environ["FEDCODEC_NEURAL_THREADS"] = "1"
os.environ["FEDCODEC_NEURAL_WORKERS"] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

from fedcodec.shared.codecs import get_codec  # noqa: E402 - after the thread settings
from fedcodec.shared.neural import weights  # noqa: E402
from fedcodec.shared.neural.fixed_point import exact_layer  # noqa: E402
from fedcodec.shared.sources import read_stacks  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STAGES = {
    "features (group_context)": ("features.py", "group_context"),
    "noise maps (level_noise)": ("features.py", "level_noise"),
    "network (integer MLP)": ("weights.py", "__call__"),
    "entropy runs (_code_residuals)": ("slice_coder.py", "_code_residuals"),
    "  of which constriction decode": ("~", "<method 'decode' of 'builtins.AnsCoder' objects>"),
    "rANS encode (finish)": ("slice_coder.py", "finish"),
    "scale adaptation (best_scale_offset)": ("adaptive_encoder.py", "best_scale_offset"),
}


def shares(run: Callable[[], object]) -> dict[str, float]:
    """Cumulative time of each stage as a fraction of the whole profiled call."""
    profile = cProfile.Profile()
    profile.enable()
    run()
    profile.disable()
    stats = pstats.Stats(profile)
    cumulative = {(os.path.basename(f), name): row[3]
                  for (f, _, name), row in stats.stats.items()}  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    out = {stage: cumulative.get(key, 0.0) / total for stage, key in STAGES.items()}
    out["total_s"] = total
    return out


def network_rows(self: weights.IntegerMlp, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network as evaluated before: pixels as rows, then the 2**-8 scaling pass."""
    x = features.T
    last = len(self.weights) - 1
    for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
        x = exact_layer(x, w, b, hidden=i < last)
    out = x.astype(np.int64)
    return (np.clip(out[:, 0], -weights.MEAN_CLAMP, weights.MEAN_CLAMP),
            np.clip(out[:, 1], -weights.LOG_SCALE_CLAMP, weights.LOG_SCALE_CLAMP))


def compare_network(codec, streams: list[bytes], volume: np.ndarray, passes: int) -> None:
    """Decode CPU ms per slice, the two network evaluations interleaved."""
    variants = {"rows (before)": network_rows, "columns (now)": weights.IntegerMlp.__call__}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(passes):
            for name, call in variants.items():
                weights.IntegerMlp.__call__ = call  # type: ignore[method-assign]
                started = time.process_time()
                if not np.array_equal(codec.decode_volume(streams), volume):
                    raise SystemExit(f"network {name}: pixels differ")
                cpu[name].append((time.process_time() - started) / len(volume) * 1000)
    finally:
        weights.IntegerMlp.__call__ = variants["columns (now)"]  # type: ignore[method-assign]
    for name, values in cpu.items():
        print(f"decode CPU, network on {name}: median {np.median(values):.1f} ms/slice, "
              f"min {min(values):.1f} ({passes} passes, load {os.getloadavg()[0]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=10)
    ap.add_argument("--compare-network", type=int, default=0, metavar="PASSES")
    args = ap.parse_args()
    ge = read_stacks(DATA / "dicom" / "ge")[0]
    t1 = next(s for s in ge if s.volume.shape[1:] == (256, 256) and s.volume.shape[0] > 100)
    volume, bits = t1.codec_volume()[0][40 : 40 + args.slices], t1.bits
    with_refs, alone = get_codec("neural:fallback=0"), get_codec("neural:fallback=0,interslice=0")
    streams = with_refs.encode_volume(volume, bits)
    with_refs.decode_volume(streams)  # warm caches
    if args.compare_network:
        compare_network(with_refs, streams, volume, args.compare_network)
        return
    runs = {"decode": lambda: with_refs.decode_volume(streams),
            "encode with references": lambda: with_refs.encode_volume(volume, bits),
            "encode alone": lambda: alone.encode_volume(volume, bits)}
    for label, run in runs.items():
        result = shares(run)
        print(f"{label}: {result.pop('total_s') / len(volume) * 1000:.0f} ms/slice profiled "
              f"(load {os.getloadavg()[0]:.1f})")
        for stage, share in result.items():
            print(f"  {stage:40s} {100 * share:5.1f} %")


if __name__ == "__main__":
    main()
