#!/usr/bin/env python3
"""Container health probe: exit 0 when the service in this container answers, 1 otherwise.

Why a script of its own: the images have no curl/grpc_health_probe, and the services speak TLS
or gRPC, not plain HTTP. Two probes, both needing no secret:

``grpc-health HOST:PORT``
    The standard ``grpc.health.v1.Health/Check`` on Flower's plaintext health server
    (``flower-superlink|flower-supernode --health-server-address 127.0.0.1:PORT``, bound to
    loopback so nothing outside the container can reach it). Healthy = ``SERVING``.
``tls HOST:PORT --ca CA.pem --server-name NAME``
    A TLS handshake (ALPN h2, as gRPC clients do) that must verify the service's certificate
    against the CA and the name the sites use (``storage``, ``analysis``). It proves the port is
    served by our TLS service with its real certificate, without a client certificate (the
    mutual-TLS check that follows the handshake is the service's business).

Installed in the images as ``/usr/local/bin/fedcodec-healthcheck``.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
from collections.abc import Sequence


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def probe_grpc_health(address: str, timeout: float = 3.0, service: str = "") -> str:
    """``SERVING`` or the reason it is not; never raises for network failures."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    _host_port(address)
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return f"health check failed: {exc.code().name}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def probe_tls(address: str, ca_file: str, server_name: str, timeout: float = 3.0) -> str:
    """``OK`` when a TLS handshake verifies the certificate for ``server_name``, else why not."""
    host, port = _host_port(address)
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        return f"certificate not valid for {server_name!r}: {exc.verify_message}"
    except (OSError, ssl.SSLError) as exc:
        return f"no TLS service at {address}: {exc.strerror or exc}"
    return "OK"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedcodec-healthcheck", description=__doc__.split("\n")[0]
    )
    probes = parser.add_subparsers(dest="probe", required=True)
    health = probes.add_parser("grpc-health", help="grpc.health.v1 Check (plaintext, loopback)")
    health.add_argument("address", metavar="HOST:PORT")
    health.add_argument("--service", default="", help="service name ('' = the whole server)")
    health.add_argument("--timeout", type=float, default=3.0)
    tls = probes.add_parser("tls", help="TLS handshake verified against the CA")
    tls.add_argument("address", metavar="HOST:PORT")
    tls.add_argument("--ca", required=True, help="the CA certificate (ca.pem)")
    tls.add_argument("--server-name", required=True, help="name the certificate must carry")
    tls.add_argument("--timeout", type=float, default=3.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.probe == "grpc-health":
            result = probe_grpc_health(args.address, args.timeout, args.service)
            healthy = result == "SERVING"
        else:
            result = probe_tls(args.address, args.ca, args.server_name, args.timeout)
            healthy = result == "OK"
    except ValueError as exc:
        result, healthy = str(exc), False
    print(f"{args.probe} {args.address}: {result}", file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
