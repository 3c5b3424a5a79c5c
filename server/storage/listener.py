"""Start the storage service on a port with mutual TLS (there is no plaintext mode).

Tests use the same path as production: a throw-away CA from :mod:`fedcodec.server.pki` and a real
TLS listener on 127.0.0.1, so the identity and isolation rules they check are the real ones.
"""

from __future__ import annotations

import datetime as dt
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from fedcodec.server.pki import CA_CERT, SERVER_CERT, SERVER_KEY, load_certificate
from fedcodec.server.storage.backend import ObjectBackend
from fedcodec.server.storage.header_check import HeaderReader, read_object_summary
from fedcodec.server.storage.limits import StorageLimits
from fedcodec.server.storage.recovery import RecoveryReport
from fedcodec.server.storage.root import open_storage
from fedcodec.server.storage.service import StorageService
from fedcodec.server.storage.servicer import StorageServicer
from fedcodec.shared.errors import FedcodecError, UnknownNameError
from fedcodec.shared.rpc import storage_pb2_grpc


@dataclass
class RunningStorage:
    """A started service: stop it with :meth:`stop` (waits for calls in flight up to ``grace``)."""

    server: grpc.Server
    port: int
    service: StorageService
    recovery: RecoveryReport

    def stop(self, grace: float | None = 2.0) -> None:
        self.server.stop(grace).wait()
        self.service.close()


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
    now = dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc < now:
        raise FedcodecError(
            f"server certificate {paths[0]} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    return grpc.ssl_server_credentials(
        [(paths[1].read_bytes(), paths[0].read_bytes())],
        root_certificates=paths[2].read_bytes(),
        require_client_auth=True,
    )


def start_storage_server(
    root: Path,
    tls_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: StorageLimits = StorageLimits(),
    header_reader: HeaderReader = read_object_summary,
    backend: ObjectBackend | None = None,
) -> RunningStorage:
    """Recover ``root``, then listen on ``host:port`` (0 picks a free port) with mutual TLS.

    Objects live in ``backend`` (default: files under ``root``).
    """
    credentials = server_credentials(tls_dir)
    service, recovery = open_storage(
        root, limits=limits, header_reader=header_reader, backend=backend
    )
    try:
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=limits.max_workers, thread_name_prefix="storage"
            ),
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        storage_pb2_grpc.add_StorageServicer_to_server(StorageServicer(service), server)
        try:
            bound = server.add_secure_port(f"{host}:{port}", credentials)
        except RuntimeError as exc:
            raise FedcodecError(f"cannot listen on {host}:{port} ({exc})") from None
        if bound == 0:
            raise FedcodecError(f"cannot listen on {host}:{port} (address in use?)")
        server.start()
    except BaseException:
        service.close()
        raise
    return RunningStorage(server, bound, service, recovery)
