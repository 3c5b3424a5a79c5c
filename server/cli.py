"""``fedcodec-server``: coordinator and cloud services (subcommands live in ``server/commands``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fedcodec.server import commands
from fedcodec.shared.cli_runner import build_parser, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(
        "fedcodec-server", "Run the federation, storage and analysis services, and audit.",
        commands, sys.argv[1:] if argv is None else argv,
    )
    return run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
