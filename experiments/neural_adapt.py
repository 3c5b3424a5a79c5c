"""What the per-slice scale adaptation of the ``neural`` codec saves, source by source.

    nice -n 10 python experiments/neural_adapt.py [SOURCE ...] [--weights PATH] [--slices 6]

For every series of each source (names of ``neural_loso.py``; default: deidentified, pypi-mr,
siemens_b), up to ``--slices`` slices spread over the series are coded as a volume by the
learned coder alone with adaptation (``neural:fallback=0``) and without
(``neural:fallback=0,adapt=0``); both are decoded and checked. Prints total bytes and the ratio.
With the shipped weights, ``siemens_b`` was trained on and the two others were not.
"""

from __future__ import annotations

import argparse

import numpy as np
from neural_loso import DATA, load_source

from fedcodec.shared.codecs import get_codec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="*", default=["deidentified", "pypi-mr", "siemens_b"])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--slices", type=int, default=6)
    args = ap.parse_args()
    suffix = f",weights={args.weights}" if args.weights else ""
    specs = (f"neural:fallback=0,adapt=0{suffix}", f"neural:fallback=0{suffix}")
    for source in args.sources:
        totals = dict.fromkeys(specs, 0)
        for name, volume, bits, _ in load_source(source, DATA, None):
            picked = volume[:: max(1, len(volume) // args.slices)][: args.slices]
            for spec in specs:
                codec = get_codec(spec)
                streams = codec.encode_volume(picked, bits)
                if not np.array_equal(codec.decode_volume(streams), picked):
                    raise SystemExit(f"{spec} failed to round-trip {name}")
                totals[spec] += sum(map(len, streams))
        plain, adapted = totals[specs[0]], totals[specs[1]]
        print(f"{source}: without {plain} B, with adaptation {adapted} B, "
              f"ratio {adapted / plain:.4f}", flush=True)


if __name__ == "__main__":
    main()
