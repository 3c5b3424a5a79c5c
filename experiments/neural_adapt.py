"""What each encode-time adaptation of the ``neural`` codec saves, source by source.

    nice -n 10 python experiments/neural_adapt.py [SOURCE ...] [--weights PATH | --folds DIR]
        [--slices 6] [--tau 0]

For every series of each source (names of ``neural_loso.py``; default: all 13), up to
``--slices`` slices spread over the series are coded as a volume by the learned coder alone
(``neural:fallback=0``) five ways, each decoded and checked:

* ``adapt=0``: no adaptation;
* ``truncate=0,meanfit=0,groupscale=0``: the per-slice scale offset only (0xA4);
* ``meanfit=0,groupscale=0``: and the slice's value range (0xA8, ``truncation.py``);
* ``groupscale=0``: and the least-squares mean corrections (``mean_fit.py``);
* the default: and a scale offset of their own for groups where it pays.

Prints bytes per source and the ratio of each step to the one before, and pooled.
``--folds DIR``: code each source with the fold model of ``neural_loso.py`` that was trained
without it (``DIR/folds``, the layout key of ``--steps``), instead of the shipped weights (which
were trained on ``dicom/``).
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
from pathlib import Path

import numpy as np
from neural_loso import DATA, DICOM_SOURCES, PYPI, fold_weights, load_source

from fedcodec.shared.codecs import get_codec

STEPS = (("no adaptation", "adapt=0"), ("scale offset", "truncate=0,meanfit=0,groupscale=0"),
         ("+ value range", "meanfit=0,groupscale=0"), ("+ mean corrections", "groupscale=0"),
         ("+ group offsets", ""))


def weights_for(source: str, args: argparse.Namespace) -> str:
    if args.folds:
        return str(fold_weights(source, args.folds, args.steps))
    return args.weights or ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="*", default=[*DICOM_SOURCES, PYPI])
    ap.add_argument("--weights", default=None, help="one weights file for every source")
    ap.add_argument("--folds", type=Path, default=None,
                    help="a neural_loso.py --out folder: each source's held-out fold model")
    ap.add_argument("--steps", type=int, default=1500, help="the fold models' budget (--folds)")
    ap.add_argument("--slices", type=int, default=6)
    ap.add_argument("--tau", type=int, default=0)
    args = ap.parse_args()
    steps = STEPS
    pooled = [0] * len(steps)
    print(f"tau={args.tau}; bytes per source, then each step / the step before", flush=True)
    for source in args.sources:
        weights = weights_for(source, args)
        totals = [0] * len(steps)
        for name, volume, bits, _ in load_source(source, DATA, None):
            picked = volume[:: max(1, len(volume) // args.slices)][: args.slices]
            for i, (_, options) in enumerate(steps):
                spec = ",".join(o for o in ("fallback=0", f"tau={args.tau}" if args.tau else "",
                                            options, f"weights={weights}" if weights else "")
                                if o)
                codec = get_codec(f"neural:{spec}")
                streams = codec.encode_volume(picked, bits)
                error = np.abs(codec.decode_volume(streams).astype(np.int64) - picked).max()
                if error > args.tau:
                    raise SystemExit(f"neural:{spec} failed to round-trip {name} ({error})")
                totals[i] += sum(map(len, streams))
        pooled = [p + t for p, t in zip(pooled, totals, strict=True)]
        print(_row(source, totals, steps), flush=True)
    print(_row("pooled", pooled, steps))


def _row(source: str, totals: list[int], steps) -> str:
    parts = [f"{source}: {totals[0]} B"]
    for i in range(1, len(steps)):
        parts.append(f"{steps[i][0]} {totals[i] / totals[i - 1]:.4f}")
    parts.append(f"all / none {totals[-1] / totals[0]:.4f}")
    return ", ".join(parts)


if __name__ == "__main__":
    main()
