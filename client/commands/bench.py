"""``fedcodec bench PATH``: every chosen codec over every slice of PATH, in one run.

PATH is a DICOM folder or file, a NIfTI file or a ``.npy`` stack (see
:mod:`fedcodec.shared.sources`). A Siemens mosaic is coded as the one image its file stores (what
a DICOM encoder compresses) unless ``--split-mosaics`` is given. Writes ``results.json``,
``results.csv``, ``rd_psnr.png`` and ``rd_ssim.png`` to ``--out`` and prints the summary table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fedcodec.shared.benchmark import (
    DEFAULT_CODECS,
    LOSSY_POINTS,
    NEURAL_LOSSY_POINTS,
    print_summary_table,
    run_benchmark,
    write_report,
)
from fedcodec.shared.codecs import codec_names, get_codec
from fedcodec.shared.dicom.series import SkippedFile
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.sources import SliceStack, first_slices, read_stacks


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark codecs on a DICOM folder, NIfTI or .npy file",
        description="Run every chosen codec over every slice of PATH in one run; check every "
        "pixel against the codec's guarantee; write results.json, results.csv and "
        "rate-distortion plots to --out and print the summary.",
    )
    parser.add_argument("path", nargs="?", type=Path, help="DICOM folder/file, .nii(.gz) or .npy")
    parser.add_argument(
        "--codecs", nargs="+", metavar="SPEC",
        help=f"codec specs, NAME or NAME:key=value,... (default: {' '.join(DEFAULT_CODECS)})",
    )
    parser.add_argument(
        "--with-lossy", action="store_true",
        help=f"add the rate-distortion points {' '.join(LOSSY_POINTS + NEURAL_LOSSY_POINTS)}",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/bench"), help="output folder (default: out/bench)"
    )
    parser.add_argument("--list", action="store_true", help="print the codec names and exit")
    parser.add_argument("--max-slices", type=int, metavar="N", help="use the first N slices only")
    parser.add_argument(
        "--split-mosaics", action="store_true",
        help="code each tile of a Siemens mosaic as a slice (default: the mosaic as stored)",
    )
    parser.add_argument(
        "--series-split", type=Path, metavar="SPLIT_JSON",
        help="only the series on one side of a training split (the split.json that "
        "`fedcodec train` writes), e.g. to measure a trained model on its held-out series",
    )
    parser.add_argument(
        "--split-side", choices=("heldout", "train"), default="heldout",
        help="which side of --series-split to use (default: heldout)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the rate-distortion PNGs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def report_skipped(skipped: Sequence[SkippedFile], shown: int = 5) -> None:
    """A few lines on stderr about files the reader passed over (never silent, never a flood)."""
    if not skipped:
        return
    print(f"skipped {len(skipped)} file(s):", file=sys.stderr)
    for item in skipped[:shown]:
        print(f"  {item.path}: {item.reason}", file=sys.stderr)
    if len(skipped) > shown:
        print(f"  ... and {len(skipped) - shown} more", file=sys.stderr)


def stacks_in_split(stacks: list[SliceStack], split_file: Path, side: str) -> list[SliceStack]:
    """The stacks whose SeriesInstanceUID is on ``side`` of a training run's ``split.json``.

    A held-out number is only held out if no slice of its series was trained on; the split is by
    SeriesInstanceUID, so every part of a series (``UID#part``) goes with it.
    """
    try:
        split = json.loads(split_file.read_text())
        uids = {entry["series_uid"] for entry in split[side]}
    except FileNotFoundError:
        raise FedcodecError(f"no such split file: {split_file}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FedcodecError(
            f"{split_file} is not a split.json from `fedcodec train` ({type(exc).__name__})"
        ) from None
    kept = [stack for stack in stacks if stack.name.split("#", 1)[0] in uids]
    if not kept:
        raise FedcodecError(f"no series of this folder is on the {side} side of {split_file}")
    return kept


def run(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(codec_names()))
        return 0
    if args.path is None:
        raise FedcodecError("bench needs a PATH (a DICOM folder or file, .nii/.nii.gz or .npy)")
    codecs = [*(args.codecs or DEFAULT_CODECS)]
    if args.with_lossy:
        codecs += [spec for spec in LOSSY_POINTS + NEURAL_LOSSY_POINTS if spec not in codecs]
    for spec in codecs:  # fail on a bad name before reading any data
        get_codec(spec)
    started = time.perf_counter()
    stacks, skipped = read_stacks(args.path, split_mosaics=args.split_mosaics)
    report_skipped(skipped)
    if args.series_split is not None:
        stacks = stacks_in_split(stacks, args.series_split, args.split_side)
    stacks = first_slices(stacks, args.max_slices)
    result = run_benchmark(stacks, codecs, progress=not args.quiet)
    from fedcodec.shared.benchmark.provenance import run_provenance

    result.provenance = run_provenance(
        args.path, codecs, max_slices=args.max_slices, split_mosaics=args.split_mosaics,
        series_split=str(args.series_split) if args.series_split else None,
    )
    print_summary_table(result)
    written = write_report(result, args.out, plots=not args.no_plots)
    print(f"wrote {', '.join(str(p) for p in written)}")
    print(f"wall time {time.perf_counter() - started:.1f} s (reading, coding, metrics, writing)")
    return 0
