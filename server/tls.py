"""The services' side of mutual TLS: credentials from a TLS folder, and a started listener.

The storage and analysis services share one PKI (:mod:`fedcodec.server.pki`) and listen the same
way: ``server.pem`` / ``server.key`` / ``ca.pem`` from ``fedcodec-server pki issue-server``, client
certificates required (a site's CN names it), no plaintext mode. Tests use this same path on
127.0.0.1, so the identity and isolation rules they check are the real ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from fedcodec.server.pki import CA_CERT, SERVER_CERT, SERVER_KEY, load_certificate
from fedcodec.shared.crypto.certificate_names import single_common_name
from fedcodec.shared.crypto.private_files import read_private_key_file
from fedcodec.shared.errors import FedcodecError, UnknownNameError


def server_credentials(tls_dir: Path) -> grpc.ServerCredentials:
    """Mutual-TLS credentials from ``tls_dir`` (``server.pem``, ``server.key``, ``ca.pem``)."""
    tls_dir = Path(tls_dir)
    paths = [tls_dir / SERVER_CERT, tls_dir / SERVER_KEY, tls_dir / CA_CERT]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UnknownNameError(
            f"missing TLS file(s) {', '.join(missing)} (create them with "
            "`fedcodec-server pki issue-server`)"
        )
    cert = load_certificate(paths[0])
    single_common_name(cert, what=f"server certificate {paths[0]}")
    key_pem = read_private_key_file(paths[1], what="TLS private key")
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc < now:
        raise FedcodecError(
            f"server certificate {paths[0]} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    return grpc.ssl_server_credentials(
        [(key_pem, paths[0].read_bytes())],
        root_certificates=paths[2].read_bytes(),
        require_client_auth=True,
    )


@dataclass(frozen=True)
class ListenerOptions:
    """How a service's gRPC server is sized (from the service's own limits)."""

    max_workers: int
    max_message_bytes: int
    thread_name_prefix: str
    max_concurrent_rpcs: int | None = None
    """Calls beyond this are refused with RESOURCE_EXHAUSTED (None: no limit)."""


def start_tls_server(
    add_servicer: Callable[[grpc.Server], None],
    credentials: grpc.ServerCredentials,
    options: ListenerOptions,
    *,
    host: str,
    port: int,
) -> tuple[grpc.Server, int]:
    """A started mutual-TLS gRPC server on ``host:port`` (0 picks a free port) and its port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=options.max_workers, thread_name_prefix=options.thread_name_prefix
        ),
        maximum_concurrent_rpcs=options.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", options.max_message_bytes),
            ("grpc.max_send_message_length", options.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    try:
        add_servicer(server)
        try:
            bound = server.add_secure_port(f"{host}:{port}", credentials)
        except RuntimeError as exc:
            raise FedcodecError(f"cannot listen on {host}:{port} ({exc})") from None
        if bound == 0:
            raise FedcodecError(f"cannot listen on {host}:{port} (address in use?)")
        server.start()
    except BaseException:
        server.stop(None)  # frees the worker threads of a server that never served
        raise
    return server, bound
