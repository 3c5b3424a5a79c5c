"""Wall time of a rate-controlled encode with one and with two worker processes.

    .venv/bin/python experiments/rate_control_speed.py [--series DIR] [--spec SPEC] [--passes N]
    .venv/bin/python experiments/rate_control_speed.py --study DIR [--passes N]

``--study``: ``fedcodec compress DIR --mode lossy`` end to end instead (its series are coded on
the worker processes too); the two containers must be byte-identical.

A ``bpp=``/``ratio=`` target codes each series many times (the tau search, every ladder tau,
two refinement lists, the final choice); the ladder and refinement codings are independent and
run on worker processes (``FEDCODEC_NEURAL_WORKERS``). This times the encode both ways,
alternating, and checks that both give the same bytes. Default: the Philips enhanced
multi-frame series of ``../shared/data/dicom-more`` (64 slices of 64x64, 12-bit), the
``preview`` profile's ``ratio=9``. Timings depend on the machine's load; the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

DEFAULT_SERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom-more" / \
    "enhanced" / "Philips"

_CHILD = """
import sys, time, hashlib, numpy as np
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.sources import read_stacks
(stack,), _ = read_stacks(sys.argv[1])
volume = np.ascontiguousarray(stack.codec_volume()[0])
codec = get_codec(sys.argv[2])
started = time.perf_counter()
streams = codec.encode_volume(volume, stack.bits)
elapsed = time.perf_counter() - started
digest = hashlib.sha256(b"".join(streams)).hexdigest()[:16]
print(f"{elapsed:.2f} {sum(map(len, streams))} {digest} {volume.shape}")
"""


def one_run(series: Path, spec: str, workers: int) -> tuple[float, int, str, str]:
    env = dict(os.environ, FEDCODEC_NEURAL_WORKERS=str(workers))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(series), spec], env=env,
                         capture_output=True, text=True, check=True).stdout.split(maxsplit=3)
    return float(out[0]), int(out[1]), out[2], out[3].strip()


def one_study(study: Path, workers: int, out: Path) -> tuple[float, int, str, str]:
    import hashlib
    import time

    env = dict(os.environ, FEDCODEC_NEURAL_WORKERS=str(workers))
    fedcodec = Path(sys.executable).with_name("fedcodec")
    started = time.perf_counter()
    subprocess.run([str(fedcodec), "compress", str(study), "-o", str(out), "--mode", "lossy",
                    "--force", "--quiet"], env=env, capture_output=True, check=True)
    data = out.read_bytes()
    return (time.perf_counter() - started, len(data), hashlib.sha256(data).hexdigest()[:16],
            study.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=Path, default=DEFAULT_SERIES)
    ap.add_argument("--spec", default="neural:mode=lossy,ratio=9")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--study", type=Path, help="time fedcodec compress --mode lossy of a study")
    args = ap.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    digests = set()
    for _ in range(args.passes):
        for workers in (1, 2):
            if args.study:
                import tempfile

                with tempfile.TemporaryDirectory() as tmp:
                    seconds, size, digest, shape = one_study(args.study, workers,
                                                             Path(tmp) / "s.fcz")
            else:
                seconds, size, digest, shape = one_run(args.series, args.spec, workers)
            times[workers].append(seconds)
            digests.add(digest)
            print(f"workers {workers}: {seconds:.1f} s, {size} bytes, sha256 {digest}, "
                  f"{shape}, load {os.getloadavg()[0]:.2f}", flush=True)
    if len(digests) != 1:
        raise SystemExit("the worker count changed the bytes")
    what = f"compress --mode lossy of {args.study}" if args.study else \
        f"{args.spec} on {args.series.name}"
    print(f"{what}: median {sorted(times[1])[len(times[1]) // 2]:.1f} s "
          f"with one worker, {sorted(times[2])[len(times[2]) // 2]:.1f} s with two; same bytes")


if __name__ == "__main__":
    main()
