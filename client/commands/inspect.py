"""``fedcodec inspect x.fcz``: a container summarised, every CRC checked; ``--verify`` decodes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="summarise an .fcz container (codec, mode, series, sizes); checks every CRC",
        description="Check the container's framing and every stream's CRC, then summarise it. "
        "--verify also decodes every series as decompress would (recorded SHA-256 digests "
        "compared, DICOM written to a temporary folder and read back).",
    )
    parser.add_argument("container", type=Path, metavar="FCZ")
    parser.add_argument(
        "--verify", action="store_true",
        help="also decode every stream and check it as decompress does (slower)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcodec.client.compression import inspect_container

    summary = inspect_container(args.container, verify=args.verify)
    if args.json:
        doc = {**vars(summary), "path": str(summary.path)}
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    else:
        print("\n".join(summary.lines()))
    return 0
