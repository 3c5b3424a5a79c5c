"""Start the storage service on a port with mutual TLS (there is no plaintext mode).

Tests use the same path as production: a throw-away CA from :mod:`fedcodec.server.pki` and a real
TLS listener on 127.0.0.1 (:mod:`fedcodec.server.tls`, shared with the analysis service), so the
identity and isolation rules they check are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from fedcodec.server.storage.backend import ObjectBackend
from fedcodec.server.storage.call_guard import CallGuard
from fedcodec.server.storage.header_check import HeaderReader, read_object_summary
from fedcodec.server.storage.limits import StorageLimits
from fedcodec.server.storage.recovery import RecoveryReport
from fedcodec.server.storage.root import open_storage
from fedcodec.server.storage.service import StorageService
from fedcodec.server.storage.servicer import StorageServicer
from fedcodec.server.storage.signing import default_signing_key
from fedcodec.server.tls import ListenerOptions, server_credentials, start_tls_server
from fedcodec.shared.rpc import storage_pb2_grpc


@dataclass
class RunningStorage:
    """A started service: stop it with :meth:`stop` (waits for calls in flight up to ``grace``)."""

    server: grpc.Server
    port: int
    service: StorageService
    recovery: RecoveryReport
    guard: CallGuard

    def stop(self, grace: float | None = 2.0) -> None:
        self.server.stop(grace).wait()
        self.guard.stop()
        self.service.close()


def start_storage_server(
    root: Path,
    tls_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: StorageLimits = StorageLimits(),
    header_reader: HeaderReader = read_object_summary,
    backend: ObjectBackend | None = None,
    signing_key: Path | None = None,
) -> RunningStorage:
    """Recover ``root``, then listen on ``host:port`` (0 picks a free port) with mutual TLS.

    Objects live in ``backend`` (default: files under ``root``); receipts and the audit head are
    signed with ``signing_key`` (default: ``TLS_DIR/receipt-signing.key``, created if missing).
    Per-site quotas, stall and deadline cancellation follow ``limits`` (:mod:`.call_guard`).
    """
    credentials = server_credentials(tls_dir)
    service, recovery = open_storage(
        root, limits=limits, header_reader=header_reader, backend=backend,
        signing_key=signing_key or default_signing_key(Path(tls_dir), Path(root)),
    )
    options = ListenerOptions(
        limits.max_workers, limits.max_message_bytes, "storage", limits.max_concurrent_rpcs
    )
    guard = CallGuard(limits)
    try:
        server, bound = start_tls_server(
            lambda s: storage_pb2_grpc.add_StorageServicer_to_server(
                StorageServicer(service, guard), s
            ),
            credentials, options, host=host, port=port,
        )
    except BaseException:
        service.close()
        raise
    guard.start()
    return RunningStorage(server, bound, service, recovery, guard)
