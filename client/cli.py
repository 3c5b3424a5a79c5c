"""``fedcodec``: the site and researcher command line (subcommands live in ``client/commands``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from fedcodec.client import commands
from fedcodec.shared.cli_runner import build_parser, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC's C core logs failed TLS handshakes at INFO before our one-line error says the same.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    parser = build_parser(
        "fedcodec", "Compress, benchmark, train and protect MRI at a hospital site.", commands
    )
    return run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
