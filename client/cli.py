"""``fedcodec``: the site and researcher command line (subcommands live in ``client/commands``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from fedcodec.client import commands
from fedcodec.shared.cli_runner import build_parser, run_cli


def main(
    argv: Sequence[str] | None = None, *, parser: argparse.ArgumentParser | None = None
) -> int:
    """Run one command; ``parser`` (from :func:`client_parser`) skips rebuilding it, for
    callers that run thousands of commands in one process (the fuzz campaign)."""
    # gRPC's C core logs failed TLS handshakes at INFO before our one-line error says the same.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if parser is None:
        parser = client_parser(sys.argv[1:] if argv is None else argv)
    return run_cli(parser, argv)


def client_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``fedcodec`` parser: every subcommand, or only the one ``argv`` runs (faster start)."""
    return build_parser(
        "fedcodec", "Compress, benchmark, train and protect MRI at a hospital site.", commands,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
