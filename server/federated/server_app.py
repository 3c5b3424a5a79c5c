"""The federation's Flower ServerApp: a thin shell around :func:`run_federation`."""

from __future__ import annotations

from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedcodec.server.federated.federation import run_federation


def build_server_app(overrides: dict[str, Any] | None = None, results: list | None = None) -> ServerApp:
    """A ServerApp reading ``context.run_config`` updated by ``overrides``; the strategy of the
    finished run is appended to ``results`` when given (simulation tests inspect it)."""
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = run_federation(grid, context, overrides)
        if results is not None:
            results.append(strategy)

    return server_app


app = build_server_app()
