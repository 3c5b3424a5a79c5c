"""Command-line choice of object backend, shared by ``storage serve`` and ``audit``."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcodec.server.storage.backend import FilesystemBackend, ObjectBackend
from fedcodec.server.storage.s3_backend import S3Backend, S3Settings
from fedcodec.shared.errors import FedcodecError


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "S3-compatible backend (objects in a bucket; index and audit log stay under --root)"
    )
    group.add_argument("--s3-endpoint", help="http(s)://host[:port] of an S3-compatible server")
    group.add_argument("--s3-bucket", help="bucket name (must exist)")
    group.add_argument("--s3-region", default="us-east-1")
    group.add_argument("--s3-prefix", default="", help="key prefix inside the bucket")


def backend_from_args(args: argparse.Namespace, root: Path) -> ObjectBackend:
    """The filesystem backend under ``root``, or S3 when ``--s3-endpoint`` is given.

    S3 credentials come from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, never the command
    line (which other users of the machine can read).
    """
    if not args.s3_endpoint:
        return FilesystemBackend(root)
    if not args.s3_bucket:
        raise FedcodecError("--s3-endpoint needs --s3-bucket")
    settings = S3Settings.from_environment(
        args.s3_endpoint, args.s3_bucket, args.s3_region, args.s3_prefix
    )
    return S3Backend(settings, Path(root) / "spool")
