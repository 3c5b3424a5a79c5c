"""Start the analysis service on a port with mutual TLS (same PKI as the storage service).

Certificates come from :mod:`fedcodec.server.pki` (``fedcodec-server pki ...``): the service
needs ``server.pem``/``server.key``/``ca.pem``; a site's CN (its client certificate) names it.
The listener itself is :mod:`fedcodec.server.tls`, shared with the storage service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from fedcodec.server.analysis.service import AnalysisService
from fedcodec.server.analysis.servicer import AnalysisServicer
from fedcodec.server.tls import ListenerOptions, server_credentials, start_tls_server
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
    options = ListenerOptions(limits.max_workers, limits.max_message_bytes, "analysis")
    server, bound = start_tls_server(
        lambda s: analysis_pb2_grpc.add_AnalysisServicer_to_server(AnalysisServicer(service), s),
        credentials, options, host=host, port=port,
    )
    return RunningAnalysis(server, bound, service)
