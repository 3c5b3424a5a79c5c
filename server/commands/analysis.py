"""``fedcodec-server analysis``: the encrypted-inference service (public CKKS, mutual TLS)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcodec.server.serve_loop import serve_until_signalled


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analysis", help="serve encrypted inference on pooled latent features (CKKS, mutual TLS)"
    )
    parser.add_argument(
        "--model", type=Path, required=True,
        help="folder with head-linear.json / head-poly-mlp.json (from `fedcodec analyze train`)",
    )
    parser.add_argument(
        "--tls-dir", type=Path, required=True, help="folder with server.pem, server.key, ca.pem"
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--max-batch", type=int, help="studies per request (default: built in)")
    parser.add_argument("--max-request-mib", type=int, help="request size limit (default: built in)")
    parser.add_argument("--workers", type=int, help="worker threads (default: built in)")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from fedcodec.server.analysis.listener import start_analysis_server  # loads TenSEAL
    from fedcodec.server.analysis.service import AnalysisService

    from fedcodec.shared.analysis.wire import MIB, AnalysisLimits

    defaults = AnalysisLimits()
    limits = AnalysisLimits(
        max_request_bytes=(args.max_request_mib * MIB if args.max_request_mib
                           else defaults.max_request_bytes),
        max_batch=args.max_batch or defaults.max_batch,
        max_workers=args.workers or defaults.max_workers,
    )
    service = AnalysisService.from_model_dir(args.model, limits)
    running = start_analysis_server(service, args.tls_dir, host=args.host, port=args.port)
    for kind, card in service.cards.items():
        print(f"head {kind}: model {card.model_hash[:16]}, {card.feature_count} features, "
              f"{card.profile.describe()}", flush=True)
    return serve_until_signalled(
        running, "analysis service",
        ready_line=f"analysis service listening on {args.host}:{running.port} (mutual TLS)",
    )
