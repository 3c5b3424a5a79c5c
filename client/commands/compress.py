"""``fedcodec compress STUDY_DIR -o study.fcz``: a DICOM study into one verified container."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcodec.shared.errors import FedcodecError


def _default(mode: str, tau: int = 0) -> str:
    """The spec ``compress`` uses for ``mode`` (the help text reads it, never restates it)."""
    from fedcodec.client.compression import default_codec_spec

    return default_codec_spec(mode, tau)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="compress a DICOM study into an .fcz container (verified before writing)",
        description="Read every DICOM series under STUDY_DIR, code it, check every pixel "
        "against the promise of its mode, and write one .fcz container. --codec takes "
        "any registered codec spec (see `fedcodec bench --list` for names); without it the "
        f"mode picks one: lossless -> {_default('lossless')}, near-lossless -> "
        f"{_default('near-lossless', 2).replace(':tau=2', ':tau=N')}, lossy -> "
        "neural:mode=lossy with one target (--psnr, --bpp, --ratio, --max-error, or --quality "
        "as a ratio; default ratio 9), the bounded-error coder that records the bound every "
        "pixel is within (JPEG 2000 stays available: --codec j2k:ratio=R). Or choose a "
        "task-based --profile instead of a mode: "
        "archive (lossless), diagnostic (near-lossless, tau 2), preview (lossy, 20:1), or auto "
        "(per series from its Series Description and attributes de-identification keeps, "
        "such as Image Type: localizers -> preview, diffusion -> "
        "diagnostic, anything else -> archive; edit with --profile-rules FILE), or roi: a region "
        "of interest (--roi-box or --roi-mask) kept lossless, the rest lossy, in one stream per "
        "slice. The profile is recorded in the container and in lossy DICOM output. "
        "STUDY_DIR may also be a research image folder or file (PNG, JPEG, NIfTI): then -o "
        "names a folder and each file becomes its own .fcz (IMAGE.png -> OUT/IMAGE.png.fcz).",
    )
    parser.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="the .fcz to write (a folder of .fcz files for research images)")
    parser.add_argument(
        "--mode",
        choices=("lossless", "near-lossless", "lossy"),
        help="what every pixel must satisfy (default lossless; not with --profile)",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="archive | diagnostic | preview | roi | auto (per series), or a profile defined "
        "in --profile-rules",
    )
    region = parser.add_mutually_exclusive_group()
    region.add_argument(
        "--roi-box",
        metavar="X0,Y0,X1,Y1[,Z0,Z1]",
        help="--profile roi: the region of interest, columns X0..X1-1 and rows Y0..Y1-1 "
        "(optionally slices Z0..Z1-1; others are lossy throughout), clipped to each series",
    )
    region.add_argument(
        "--roi-mask",
        type=Path,
        metavar="FILE",
        help="--profile roi: a mask, non-zero = ROI: .npy/.npz of shape (slices, rows, cols) or "
        "(rows, cols), or NIfTI (nibabel; voxel axes i,j,k = column,row,slice)",
    )
    parser.add_argument(
        "--profile-rules",
        type=Path,
        metavar="FILE",
        help="TOML/JSON rules for --profile auto (and site edits of the profiles)",
    )
    parser.add_argument("--tau", type=int, default=0, help="near-lossless: max error per pixel")
    parser.add_argument(
        "--quality", type=int, help="lossy: a target ratio 1..100 (100 = 4:1, 75 = 9:1, "
        "1 = 100:1)"
    )
    targets = parser.add_mutually_exclusive_group()
    targets.add_argument("--psnr", type=float, metavar="DB",
                         help="lossy: every slice at or above DB (peak 2^bits-1, bits = Bits "
                         "Stored: data that use a small part of that range get larger errors "
                         "for the same DB; --max-error bounds the error itself)")
    targets.add_argument("--bpp", type=float, metavar="B",
                         help="lossy: every series (so the study) at or below B bits per pixel, "
                         "a bound per slice for the best mean slice PSNR")
    targets.add_argument("--ratio", type=float, metavar="R",
                         help="lossy: every series (so the study) at or above R:1 of the stored "
                         "bits allocated")
    targets.add_argument("--max-error", type=int, metavar="T",
                         help="lossy: every pixel within T (the bound is recorded either way)")
    parser.add_argument("--codec", metavar="SPEC", help="codec spec, e.g. jpegls:tau=2")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    parser.add_argument("--skip-unreadable", action="store_true",
                        help="archive the study without the image files that cannot be read "
                        "(damaged, or a kind fedcodec does not code); without it they stop the "
                        "command, since the archive would lack them")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcodec.client.compression import compress_study
    from fedcodec.shared.learned_lossy.roi_mask import load_mask_file, parse_box
    from fedcodec.shared.neural.rate_control import LossyTarget
    from fedcodec.shared.profiles import load_rules

    from fedcodec.client.image_folder_compression import compress_images, research_images
    from fedcodec.shared.output_paths import check_output

    if not research_images(args.study_dir):  # a research image folder checks its own outputs
        check_output(args.output, folder=False, force=args.force)
    if args.profile_rules is not None and args.profile is None:
        raise FedcodecError("--profile-rules needs --profile (auto, or a profile it defines)")
    rules = load_rules(args.profile_rules) if args.profile_rules is not None else None
    roi = None
    if args.roi_box is not None:
        roi = parse_box(args.roi_box)
    elif args.roi_mask is not None:
        roi = load_mask_file(args.roi_mask)
    named = {"psnr": args.psnr, "bpp": args.bpp, "ratio": args.ratio,
             "max_error": args.max_error}
    target = None
    if any(v is not None for v in named.values()):
        if args.mode not in (None, "lossy"):
            raise FedcodecError("--psnr/--bpp/--ratio/--max-error apply to --mode lossy, not "
                                f"{args.mode}")
        target = LossyTarget.from_params(**named)
    options = dict(mode=args.mode, tau=args.tau, quality=args.quality, codec=args.codec,
                   profile=args.profile, rules=rules, progress=not args.quiet, roi=roi,
                   target=target)
    images = research_images(args.study_dir)
    if images:  # a research image folder (PNG/JPEG/NIfTI): one .fcz per file under -o DIR
        written = compress_images(images, args.study_dir, args.output, force=args.force,
                                  **options)
        for path, report in written:
            print(f"{path}: {report.summary_lines()[0].split(': ', 1)[1]}")
        print(f"wrote {len(written)} containers under {args.output}")
        return 0
    report = compress_study(args.study_dir, args.output, skip_unreadable=args.skip_unreadable,
                            **options)
    print("\n".join(report.summary_lines()))
    return 0
