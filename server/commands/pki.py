"""``fedcodec-server pki``: the CA, the service certificate and per-site client certificates."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcodec.server import pki


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pki", help="issue TLS certificates for the storage service")
    actions = parser.add_subparsers(dest="pki_action", metavar="ACTION", required=True)

    init = actions.add_parser("init-ca", help="create the CA (ca.pem, ca.key) in --ca-dir")
    init.add_argument("--ca-dir", type=Path, required=True)
    init.add_argument("--name", default="fedcodec storage CA", help="CA common name")
    init.add_argument("--days", type=int, default=3650)
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(func=_init_ca)

    server = actions.add_parser(
        "issue-server", help="write server.pem/server.key/ca.pem for `storage serve --tls-dir`"
    )
    server.add_argument("--ca-dir", type=Path, required=True)
    server.add_argument("--out", type=Path, required=True, help="the service's TLS folder")
    server.add_argument("--host", action="append", help="DNS name (repeatable; default localhost)")
    server.add_argument("--ip", action="append", help="IP address (repeatable; default 127.0.0.1)")
    server.add_argument("--days", type=int, default=825)
    server.add_argument("--force", action="store_true")
    server.set_defaults(func=_issue_server)

    site = actions.add_parser(
        "issue-site", help="write site.pem/site.key/ca.pem (CN = SITE) for `fedcodec store`"
    )
    site.add_argument("site", help="site name, e.g. ge or hospital-a")
    site.add_argument("--ca-dir", type=Path, required=True)
    site.add_argument("--out", type=Path, required=True, help="the site's TLS folder")
    site.add_argument("--days", type=int, default=365)
    site.add_argument("--force", action="store_true")
    site.set_defaults(func=_issue_site)


def _show(issued: pki.IssuedCertificate) -> None:
    print(f"{issued.subject}: {issued.cert_path} (key {issued.key_path}), "
          f"valid until {issued.not_valid_after:%Y-%m-%d %H:%M} UTC")


def _init_ca(args: argparse.Namespace) -> int:
    _show(pki.init_ca(args.ca_dir, name=args.name, days=args.days, force=args.force))
    return 0


def _issue_server(args: argparse.Namespace) -> int:
    hosts = tuple(args.host) if args.host else ("localhost",)
    ips = tuple(args.ip) if args.ip else ("127.0.0.1",)
    _show(pki.issue_server(
        args.ca_dir, args.out, hosts=hosts, ips=ips, days=args.days, force=args.force
    ))
    return 0


def _issue_site(args: argparse.Namespace) -> int:
    _show(pki.issue_site(args.ca_dir, args.out, args.site, days=args.days, force=args.force))
    return 0
