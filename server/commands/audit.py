"""``fedcodec-server audit``: verify the audit chain and every stored object; print inventory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedcodec.server.audit.report import audit_storage, render_text
from fedcodec.server.storage.backend_options import add_backend_options, backend_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit", help="verify the storage audit log and objects; exit 1 if anything fails"
    )
    parser.add_argument("--root", type=Path, required=True, help="storage root folder")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--service-key", type=Path, default=None,
        help="the service's public signing key (receipt-signing.pub from its TLS folder; "
        "default: the copy in ROOT/audit/service-key.pub)",
    )
    parser.add_argument(
        "--reviewed-through", type=int, default=0, metavar="SEQ",
        help="recovery alarms (index rollback, data loss) up to this log seq were investigated",
    )
    add_backend_options(parser)
    parser.set_defaults(func=_audit)


def _audit(args: argparse.Namespace) -> int:
    report = audit_storage(
        args.root, backend=backend_from_args(args, args.root), service_key=args.service_key,
        reviewed_through=args.reviewed_through,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(render_text(report))
    return 0 if report.ok else 1
