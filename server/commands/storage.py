"""``fedcodec-server storage serve``: the zero-knowledge storage service (mutual TLS only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcodec.server.serve_loop import serve_until_signalled
from fedcodec.server.storage.backend_options import add_backend_options, backend_from_args
from fedcodec.server.storage.limits import MIB, StorageLimits
from fedcodec.server.storage.listener import start_storage_server


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("storage", help="run the encrypted-object storage service")
    actions = parser.add_subparsers(dest="storage_action", metavar="ACTION", required=True)
    serve = actions.add_parser("serve", help="serve a storage root over gRPC with mutual TLS")
    serve.add_argument("--root", type=Path, required=True, help="storage root folder")
    serve.add_argument(
        "--tls-dir", type=Path, required=True, help="folder with server.pem, server.key, ca.pem"
    )
    serve.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--max-object-mib", type=int, default=StorageLimits.max_object_bytes // MIB)
    serve.add_argument("--chunk-kib", type=int, default=StorageLimits.chunk_bytes // 1024)
    serve.add_argument("--workers", type=int, default=StorageLimits.max_workers)
    serve.add_argument(
        "--signing-key", type=Path, default=None,
        help="Ed25519 key that signs receipts and the audit head (created if missing; default "
        "TLS_DIR/receipt-signing.key, keep it off the storage disk)",
    )
    add_backend_options(serve)
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    chunk = args.chunk_kib * 1024
    limits = StorageLimits(
        max_object_bytes=args.max_object_mib * MIB,
        chunk_bytes=chunk,
        max_message_bytes=max(StorageLimits.max_message_bytes, chunk + 64 * 1024),
        max_workers=args.workers,
    )
    running = start_storage_server(
        args.root, args.tls_dir, host=args.host, port=args.port, limits=limits,
        backend=backend_from_args(args, args.root), signing_key=args.signing_key,
    )
    for line in running.recovery.lines():
        print(f"recovery: {line}", flush=True)
    signer = running.service.signer
    if signer is not None:
        print(f"receipts and audit head signed with {signer.key_id} ({signer.path})", flush=True)
    print(f"storage service listening on {args.host}:{running.port} (mutual TLS)", flush=True)
    return serve_until_signalled(running, "storage service")
