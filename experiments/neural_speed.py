"""Speed of the neural codec against JPEG XL e7 on the same slices, measured interleaved.

    nice -n 10 python experiments/neural_speed.py [--weights PATH]

1. Lossless encode + decode of 256x256 slices (GE 3-D T1), one slice at a time, alternating
   JPEG XL e7 (imagecodecs defaults) and the neural codec so both see the same machine load.
2. Decoding a 200-slice 256x256 study (the 130 T1 slices + 70 Siemens T1 slices, as volumes
   with inter-slice context).
Timings on a shared 2-core machine are noisy; the ratio is the number to read.
"""

from __future__ import annotations

import argparse
import time

import imagecodecs
import numpy as np
from neural_dataset import load_items

from fedcodec.shared.neural.codec import NeuralCodec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--slices", type=int, default=20)
    args = ap.parse_args()
    items = load_items()
    mprage = next(i for i in items if "MP_RAGE" in i.name)
    flash = [i for i in items if "t1_fl2d_sag" in i.name]
    codec = NeuralCodec(weights=args.weights)
    images = mprage.volume[40 : 40 + args.slices]
    codec.decode(codec.encode(images[0], mprage.bits))  # warm caches
    jxl_t, ours_t, jxl_b, ours_b = [], [], 0, 0
    for image in images:
        t0 = time.perf_counter()
        data = imagecodecs.jpegxl_encode(image, lossless=True, effort=7)
        imagecodecs.jpegxl_decode(data)
        t1 = time.perf_counter()
        ours = codec.encode(image, mprage.bits)
        codec.decode(ours)
        t2 = time.perf_counter()
        jxl_t.append(t1 - t0)
        ours_t.append(t2 - t1)
        jxl_b += len(data)
        ours_b += len(ours)
    j, o = np.median(jxl_t) * 1000, np.median(ours_t) * 1000
    print(f"256x256 encode+decode, median of {len(images)}: JPEG XL e7 {j:.1f} ms, "
          f"neural {o:.1f} ms, ratio {o / j:.2f} (bytes ratio {ours_b / jxl_b:.3f})")
    study = [(mprage.volume, mprage.bits)] + [(i.volume, i.bits) for i in flash]
    streams = [codec.encode_volume(v, b) for v, b in study]
    t0 = time.perf_counter()
    for s in streams:
        codec.decode_volume(s)
    total = time.perf_counter() - t0
    n = sum(len(s) for s in streams)
    print(f"decode a {n}-slice 256x256 study with inter-slice context: {total:.1f} s "
          f"({total / n * 1000:.0f} ms/slice)")


if __name__ == "__main__":
    main()
