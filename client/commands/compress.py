"""``fedcodec compress STUDY_DIR -o study.fcz``: a DICOM study into one verified container."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcodec.shared.errors import FedcodecError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="compress a DICOM study into an .fcz container (verified before writing)",
        description="Read every DICOM series under STUDY_DIR, code it, check every pixel "
        "against the promise of its mode, and write one .fcz container. --codec takes "
        "any registered codec spec (see `fedcodec bench --help` for names); without it the "
        "mode picks one: lossless -> jxl, near-lossless -> jpegls:tau=N, lossy -> "
        "j2k:ratio=R from --quality. Or choose a task-based --profile instead of a mode: "
        "archive (lossless), diagnostic (near-lossless, tau 2), preview (lossy, 20:1), or auto "
        "(per series from its Series Description: localizers -> preview, diffusion -> "
        "diagnostic, anything else -> archive; edit with --profile-rules FILE). The profile is "
        "recorded in the container and in lossy DICOM output.",
    )
    parser.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .fcz to write")
    parser.add_argument(
        "--mode",
        choices=("lossless", "near-lossless", "lossy"),
        help="what every pixel must satisfy (default lossless; not with --profile)",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="archive | diagnostic | preview | auto (per series), or a profile defined in "
        "--profile-rules; roi is declared but not implemented",
    )
    parser.add_argument(
        "--profile-rules",
        type=Path,
        metavar="FILE",
        help="TOML/JSON rules for --profile auto (and site edits of the profiles)",
    )
    parser.add_argument("--tau", type=int, default=0, help="near-lossless: max error per pixel")
    parser.add_argument(
        "--quality", type=int, help="lossy: 1..100 (100 = 4:1, 75 = 9:1, 1 = 100:1)"
    )
    parser.add_argument("--codec", metavar="SPEC", help="codec spec, e.g. jpegls:tau=2")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcodec.client.compression import compress_study
    from fedcodec.shared.profiles import load_rules

    if args.output.exists() and not args.force:
        raise FedcodecError(f"{args.output} exists; use --force to overwrite it")
    if args.profile_rules is not None and args.profile is None:
        raise FedcodecError("--profile-rules needs --profile (auto, or a profile it defines)")
    rules = load_rules(args.profile_rules) if args.profile_rules is not None else None
    report = compress_study(
        args.study_dir,
        args.output,
        mode=args.mode,
        tau=args.tau,
        quality=args.quality,
        codec=args.codec,
        profile=args.profile,
        rules=rules,
        progress=not args.quiet,
    )
    print("\n".join(report.summary_lines()))
    return 0
