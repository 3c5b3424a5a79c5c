"""Start the analysis service on a port with mutual TLS (same PKI as the storage service).

Certificates come from :mod:`fedcodec.server.pki` (``fedcodec-server pki ...``): the service
needs ``server.pem``/``server.key``/``ca.pem``; a site's CN (its client certificate) names it.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from fedcodec.server.analysis.service import AnalysisService
from fedcodec.server.analysis.servicer import AnalysisServicer
from fedcodec.server.storage.listener import server_credentials
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.rpc import analysis_pb2_grpc


@dataclass
class RunningAnalysis:
    """A started service: stop it with :meth:`stop`."""

    server: grpc.Server
    port: int
    service: AnalysisService

    def stop(self, grace: float | None = 2.0) -> None:
        self.server.stop(grace).wait()


def start_analysis_server(
    service: AnalysisService, tls_dir: Path, *, host: str = "127.0.0.1", port: int = 0
) -> RunningAnalysis:
    """Listen on ``host:port`` (0 picks a free port) with mutual TLS."""
    credentials = server_credentials(tls_dir)
    limits = service.limits
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.max_workers, thread_name_prefix="analysis"),
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    analysis_pb2_grpc.add_AnalysisServicer_to_server(AnalysisServicer(service), server)
    try:
        bound = server.add_secure_port(f"{host}:{port}", credentials)
    except RuntimeError as exc:
        raise FedcodecError(f"cannot listen on {host}:{port} ({exc})") from None
    if bound == 0:
        raise FedcodecError(f"cannot listen on {host}:{port} (address in use?)")
    server.start()
    return RunningAnalysis(server, bound, service)
