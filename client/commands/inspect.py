"""``fedcodec inspect study.fcz``: what a container holds, from its header alone (no pixels)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="summarise an .fcz container (codec, mode, series, sizes) without decoding",
    )
    parser.add_argument("container", type=Path, metavar="FCZ")
    parser.add_argument("--verify", action="store_true", help="also check every stream's CRC")
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
