"""Speed of the neural codec against JPEG XL e7 on the same slices, measured interleaved.

    nice -n 10 python experiments/neural_speed.py [--weights PATH] [--slices 20] [--json OUT]

1. Lossless encode + decode of one slice at a time, alternating JPEG XL e7 (the registry's
   ``jxl``) and the neural codec so both see the same machine load: 256x256 slices (GE 3-D T1)
   and 1024x1024 (pydicom-data ``MR2_UNCR``, the only 1024^2 MR at hand), for the learned coder
   alone (``neural:fallback=0``) and the product default (``neural``: it also runs the classical
   fallback candidates, so it encodes slower; decoding is the same).
2. The same 256x256 slices and the 1024x1024 slice with ``FEDCODEC_NEURAL_THREADS`` = 1 and 2
   (the group-splitting worker threads; BLAS stays pinned to one thread inside the coder).
3. A 200-slice 256x256 study (the 130 T1 slices + 70 Siemens T1 slices, three series with
   inter-slice context): encoded with the product default and with the learned coder alone,
   then decoded with ``FEDCODEC_NEURAL_WORKERS`` = 1 (in order) and 2 (independent chains and
   series on two processes, ``decode_volumes``). ``--study-only`` runs just this part.
   (The byte cost of ``neural:restart=K`` is ``experiments/neural_restart_cost.py``.)
Every timing is wall time plus the CPU time (user + sys, this process and its workers); the
1-minute load average is printed with each part. Timings on a shared 2-core machine are noisy;
the ratios are the numbers to read.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.demo_data import demo_stacks
from fedcodec.shared.neural.chains import WORKERS_ENV, chains
from fedcodec.shared.neural.codec import stream_reach
from fedcodec.shared.sources import read_stacks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _unsigned(stack) -> tuple[np.ndarray, int]:
    return stack.codec_volume()[0], stack.bits


def round_trip_ms(codec, image: np.ndarray, bits: int) -> tuple[float, float, int]:
    """Wall ms, CPU ms (every thread of this process) and bytes of one encode + decode."""
    started, cpu = time.perf_counter(), time.process_time()
    data = codec.encode(image, bits)
    if not np.array_equal(codec.decode(data), image):
        raise SystemExit(f"{codec.name} failed to round-trip a slice")
    return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000, len(data)


def interleaved(specs: list[str], images: list[np.ndarray], bits: int) -> dict[str, dict]:
    """Median encode+decode ms and total bytes per spec, the specs alternating slice by slice."""
    codecs = {spec: get_codec(spec) for spec in specs}
    for codec in codecs.values():
        round_trip_ms(codec, images[0], bits)  # warm caches
    times: dict[str, list[float]] = {spec: [] for spec in specs}
    cpu: dict[str, list[float]] = {spec: [] for spec in specs}
    sizes = dict.fromkeys(specs, 0)
    for image in images:
        for spec, codec in codecs.items():
            ms, cpu_ms, size = round_trip_ms(codec, image, bits)
            times[spec].append(ms)
            cpu[spec].append(cpu_ms)
            sizes[spec] += size
    return {spec: {"median_ms": float(np.median(times[spec])),
                   "median_cpu_ms": float(np.median(cpu[spec])), "bytes": sizes[spec]}
            for spec in specs}


def report(label: str, results: dict[str, dict]) -> None:
    base, base_cpu = results["jxl"]["median_ms"], results["jxl"]["median_cpu_ms"]
    for spec, r in results.items():
        print(f"{label} {spec:24s} {r['median_ms']:8.1f} ms  {r['median_ms'] / base:5.2f}x JXL e7"
              f"  CPU {r['median_cpu_ms']:8.1f} ms {r['median_cpu_ms'] / base_cpu:5.2f}x"
              f"  bytes {r['bytes'] / results['jxl']['bytes']:.3f}x  (load "
              f"{os.getloadavg()[0]:.1f})", flush=True)


def _cpu_seconds() -> float:
    """User + sys CPU of this process and of its (reaped) worker processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def study_decode(spec: str, study: list[tuple[np.ndarray, int]], passes: int = 1) -> dict:
    """Encode the study's volumes, then decode them on 1 and on 2 worker processes, alternated
    ``passes`` times."""
    codec = get_codec(spec)
    started, cpu = time.perf_counter(), _cpu_seconds()
    streams = [codec.encode_volume(v, b) for v, b in study]
    result: dict = {"encode_s": time.perf_counter() - started, "encode_cpu_s": _cpu_seconds() - cpu,
                    "bytes": sum(len(x) for s in streams for x in s),
                    "chains": [len(chains([i - stream_reach(x) for i, x in enumerate(s)]))
                               for s in streams]}
    n = sum(len(s) for s in streams)
    print(f"study {spec}: {n} slices, "
          f"{result['bytes']} bytes, chains per series {result['chains']}, "
          f"encode {result['encode_s']:.1f} s (CPU {result['encode_cpu_s']:.1f} s)", flush=True)
    for workers in ("1", "2") * passes:  # alternated, so both see the same load drift
        os.environ[WORKERS_ENV] = workers
        load = os.getloadavg()[0]
        started, cpu = time.perf_counter(), _cpu_seconds()
        decoded = codec.decode_volumes(streams)
        wall, used = time.perf_counter() - started, _cpu_seconds() - cpu
        if not all(np.array_equal(d, v) for d, (v, _) in zip(decoded, study, strict=True)):
            raise SystemExit("study failed to round-trip")
        result.setdefault(f"decode_s_workers{workers}", []).append(wall)
        result.setdefault(f"decode_cpu_s_workers{workers}", []).append(used)
        print(f"  decode with {workers} worker(s): {wall:.1f} s wall ({wall / n * 1000:.0f} "
              f"ms/slice), CPU {used:.1f} s, load {load:.1f}", flush=True)
    os.environ.pop(WORKERS_ENV)
    return result


def study(volume: np.ndarray, bits: int, specs: list[str], passes: int = 1) -> dict:
    """Part 3: the 200-slice study (GE T1 + the two Siemens T1 FLASH series) with each spec."""
    siemens = read_stacks(DATA / "dicom" / "siemens" / "siemens_b")[0]
    flash = [s for s in siemens if s.volume.shape[1:] == (256, 256)]
    series = [(volume, bits)] + [_unsigned(s) for s in flash]
    out: dict = {"slices": sum(v.shape[0] for v, _ in series), "load_start": os.getloadavg()[0]}
    for spec in specs:
        out[spec] = study_decode(spec, series, passes)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--slices", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--study-only", action="store_true",
                    help="only part 3 (the study)")
    ap.add_argument("--passes", type=int, default=1,
                    help="study decodes with 1 and 2 workers, alternated this many times")
    args = ap.parse_args()
    suffix = f",weights={args.weights}" if args.weights else ""
    specs = ["jxl", f"neural:fallback=0{suffix}", f"neural:fallback=1{suffix}"]  # 1: the default
    ge = read_stacks(DATA / "dicom" / "ge")[0]
    mprage = next(s for s in ge if s.volume.shape[1:] == (256, 256) and s.volume.shape[0] > 100)
    volume, bits = _unsigned(mprage)
    images = [np.ascontiguousarray(i) for i in volume[40 : 40 + args.slices]]
    out: dict = {"load_start": os.getloadavg()[0]}
    print(f"load average (1 min) at the start: {out['load_start']:.1f}", flush=True)
    if args.study_only:
        out["study"] = study(volume, bits, [specs[2], specs[1]], args.passes)
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
        return
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
        r = interleaved(["jxl", specs[1]], [np.ascontiguousarray(big_volume[0])] * 2, big_bits)
        out["threads"].setdefault(f"{threads}@1024", []).append(r[specs[1]]["median_ms"])
    os.environ.pop("FEDCODEC_NEURAL_THREADS")
    for threads, values in out["threads"].items():
        print(f"learned coder, FEDCODEC_NEURAL_THREADS={threads} (256^2 unless @1024): "
              f"{' / '.join(f'{v:.1f}' for v in values)} ms (two passes)", flush=True)

    out["study"] = study(volume, bits, [specs[2], specs[1]], args.passes)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
