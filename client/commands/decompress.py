"""``fedcodec decompress study.fcz -o DIR``: a container back to DICOM files."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decompress",
        help="decode an .fcz container back to DICOM (one folder per series)",
        description="Decode every series of an .fcz into DICOM files under DIR (which must not "
        "exist or be empty). Lossless containers keep every original UID; near-lossless and "
        "lossy ones are marked LossyImageCompression 01 with new SOP Instance UIDs.",
    )
    parser.add_argument("container", type=Path, metavar="FCZ")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    parser.add_argument("--layer", type=int, metavar="K",
                        help="progressive containers (neural:mode=progressive): decode only the "
                        "first K layers, a preview within layer K's bound (read from the "
                        "streams and stated in the DICOM Derivation Description)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcodec.client.compression import decompress_study
    from fedcodec.shared.output_paths import check_output

    check_output(args.output, folder=True)
    files = decompress_study(args.container, args.output, progress=not args.quiet,
                             layer=args.layer)
    folders = {p.parent for p in files}
    print(f"wrote {len(files)} DICOM files in {len(folders)} series folders under {args.output}")
    return 0
