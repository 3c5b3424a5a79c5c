"""Speed of the neural codec against JPEG XL e7 on the same slices, measured interleaved.

    nice -n 10 python experiments/neural_speed.py [--weights PATH] [--slices 20] [--json OUT]

1. Lossless encode + decode of one slice at a time, alternating JPEG XL e7 (the registry's
   ``jxl``) and the neural codec so both see the same machine load: 256x256 slices (GE 3-D T1)
   and 1024x1024 (pydicom-data ``MR2_UNCR``, the only 1024^2 MR at hand), for the learned coder
   alone (``neural:fallback=0``) and the product default (``neural``: it also runs the classical
   fallback candidates, so it encodes slower; decoding is the same).
2. The same 256x256 slices with ``FEDCODEC_NEURAL_THREADS`` = 1 and 2 (the group-splitting
   worker threads; BLAS stays pinned to one thread inside the coder).
3. Decoding a 200-slice 256x256 study (the 130 T1 slices + 70 Siemens T1 slices, as volumes
   with inter-slice context).
Timings on a shared 2-core machine are noisy; the ratios are the numbers to read.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.demo_data import demo_stacks
from fedcodec.shared.sources import read_stacks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _unsigned(stack) -> tuple[np.ndarray, int]:
    return stack.codec_volume()[0], stack.bits


def round_trip_ms(codec, image: np.ndarray, bits: int) -> tuple[float, int]:
    started = time.perf_counter()
    data = codec.encode(image, bits)
    if not np.array_equal(codec.decode(data), image):
        raise SystemExit(f"{codec.name} failed to round-trip a slice")
    return (time.perf_counter() - started) * 1000, len(data)


def interleaved(specs: list[str], images: list[np.ndarray], bits: int) -> dict[str, dict]:
    """Median encode+decode ms and total bytes per spec, the specs alternating slice by slice."""
    codecs = {spec: get_codec(spec) for spec in specs}
    for codec in codecs.values():
        round_trip_ms(codec, images[0], bits)  # warm caches
    times: dict[str, list[float]] = {spec: [] for spec in specs}
    sizes = dict.fromkeys(specs, 0)
    for image in images:
        for spec, codec in codecs.items():
            ms, size = round_trip_ms(codec, image, bits)
            times[spec].append(ms)
            sizes[spec] += size
    return {spec: {"median_ms": float(np.median(times[spec])), "bytes": sizes[spec]}
            for spec in specs}


def report(label: str, results: dict[str, dict]) -> None:
    base = results["jxl"]["median_ms"]
    for spec, r in results.items():
        print(f"{label} {spec:24s} {r['median_ms']:8.1f} ms  {r['median_ms'] / base:5.2f}x JXL e7"
              f"  bytes {r['bytes'] / results['jxl']['bytes']:.3f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--slices", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    suffix = f",weights={args.weights}" if args.weights else ""
    specs = ["jxl", f"neural:fallback=0{suffix}", f"neural:fallback=1{suffix}"]  # 1: the default
    ge = read_stacks(DATA / "dicom" / "ge")[0]
    mprage = next(s for s in ge if s.volume.shape[1:] == (256, 256) and s.volume.shape[0] > 100)
    volume, bits = _unsigned(mprage)
    images = [np.ascontiguousarray(i) for i in volume[40 : 40 + args.slices]]
    out: dict = {}
    out["256"] = interleaved(specs, images, bits)
    report("256^2", out["256"])

    big = next(s for s in demo_stacks()[0] if s.volume.shape[1:] == (1024, 1024))
    big_volume, big_bits = _unsigned(big)
    out["1024"] = interleaved(specs, [np.ascontiguousarray(big_volume[0])] * 3, big_bits)
    report("1024^2", out["1024"])

    out["threads"] = {}
    for threads in ("1", "2", "1", "2"):
        os.environ["FEDCODEC_NEURAL_THREADS"] = threads
        r = interleaved(["jxl", specs[1]], images[:10], bits)
        out["threads"].setdefault(threads, []).append(r[specs[1]]["median_ms"])
    os.environ.pop("FEDCODEC_NEURAL_THREADS")
    for threads, values in out["threads"].items():
        print(f"256^2 learned coder, FEDCODEC_NEURAL_THREADS={threads}: "
              f"{' / '.join(f'{v:.1f}' for v in values)} ms (two passes)", flush=True)

    siemens = read_stacks(DATA / "dicom" / "siemens" / "siemens_b")[0]
    flash = [s for s in siemens if s.volume.shape[1:] == (256, 256)]
    study = [(volume, bits)] + [_unsigned(s) for s in flash]
    codec = get_codec(specs[2])
    streams = [codec.encode_volume(v, b) for v, b in study]
    started = time.perf_counter()
    for s, (v, _) in zip(streams, study, strict=True):
        if not np.array_equal(codec.decode_volume(s), v):
            raise SystemExit("study failed to round-trip")
    total = time.perf_counter() - started
    n = sum(len(s) for s in streams)
    out["study"] = {"slices": n, "decode_s": total}
    print(f"decode a {n}-slice 256x256 study (product default, inter-slice context): "
          f"{total:.1f} s ({total / n * 1000:.0f} ms/slice)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
