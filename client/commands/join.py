"""``fedcodec join``: take part in a federation as a hospital site.

    fedcodec join keygen --keys KEYS          (send KEYS/supernode.pub to the coordinator)
    fedcodec join --superlink HOST:PORT --root-cert ca.pem --keys KEYS \
                  --data-dir /pacs/export --site st-elsewhere [--state-dir DIR] [--target-epsilon 4]

Starts this site's SuperNode over TLS with node authentication, pointed at its own DICOM folder,
in the foreground (SIGTERM / Ctrl-C stop it and the processes it started).
Pixels, headers and the privacy accountant stay in ``--data-dir`` / ``--state-dir``; only masked
model updates and a few scalars leave (docs/federated-training.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("join", help="join a federated training run as a site")
    parser.add_argument("action", nargs="?", choices=("keygen",), help="keygen: create node keys")
    parser.add_argument("--keys", type=Path, required=True, help="folder of the SuperNode key pair")
    parser.add_argument("--superlink", help="the coordinator's host:port")
    parser.add_argument("--root-cert", type=Path, help="the federation CA certificate (ca.pem)")
    parser.add_argument("--data-dir", type=Path, help="this site's DICOM folder")
    parser.add_argument("--site", help="this site's name (default: the folder name)")
    parser.add_argument("--state-dir", type=Path, help="accountant + cache (default: ~/.fedcodec/SITE)")
    parser.add_argument("--target-epsilon", type=float,
                        help="a stricter ε for this site (the smaller of this and the run's wins)")
    parser.add_argument("--port", type=int, default=9094, help="local ClientApp API port")
    parser.add_argument("--force", action="store_true", help="keygen: replace existing keys")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcodec.client.federated.supernode import (
        create_node_keys,
        supernode_command,
        supernode_env,
    )
    from fedcodec.shared.errors import FedcodecError
    from fedcodec.shared.supervise import run_supervised

    if args.action == "keygen":
        _, public = create_node_keys(args.keys, force=args.force)
        print(f"SuperNode public key: {public} (send it to the coordinator)")
        return 0
    missing = [f"--{n.replace('_', '-')}" for n in ("superlink", "root_cert", "data_dir")
               if getattr(args, n) is None]
    if missing:
        raise FedcodecError(f"join needs {', '.join(missing)}")
    from fedcodec.client.federated.supernode import PRIVATE_KEY
    from fedcodec.shared.crypto.private_files import read_private_key_file

    read_private_key_file(args.keys / PRIVATE_KEY, what="SuperNode private key")
    site = args.site or args.data_dir.resolve().name
    state = args.state_dir or Path.home() / ".fedcodec" / site
    cmd = supernode_command(args.superlink, args.root_cert, args.keys, args.data_dir, site, state,
                            args.port, args.target_epsilon)
    # SIGTERM / Ctrl-C stop the SuperNode and the superexec / ClientApp processes it started
    return run_supervised(cmd, supernode_env(state))
