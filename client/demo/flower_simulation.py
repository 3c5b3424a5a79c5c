"""Run a Flower simulation in its own process, as Flower's simulation engine would.

The demo (a site-side tool) never imports the coordinator's code: like ``flwr run``, this
process is handed the ServerApp and ClientApp as *references* (``module:factory`` strings, the
same components ``[tool.flwr.app.components]`` names) and loads them by name. Each factory is
called with the run config, so no pyproject or SuperLink is needed. Run as::

    python -m fedcodec.client.demo.flower_simulation --server-app M:F --client-app M:F \
        --supernodes 3 --run-config run.json

It exits 0 when the ServerApp finished; the results live where the run config says
(checkpoint folder, MLflow store), which is where the demo reads them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

SERVER_APP_FACTORY = "fedcodec.server.federated.server_app:build_server_app"
CLIENT_APP_FACTORY = "fedcodec.client.federated.client_app:build_client_app"
QUIET_FLOWER = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_DEDUP_LOGS": "0",
}


def load_factory(reference: str) -> Any:
    """The callable a ``module:attribute`` reference names."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"app reference {reference!r} is not module:attribute")
    return getattr(importlib.import_module(module_name), attribute)


def run(server_ref: str, client_ref: str, supernodes: int, run_config: dict[str, Any],
        cpus: int) -> None:
    from flwr.simulation import run_simulation

    results: list = []
    server_app = load_factory(server_ref)(run_config, results)
    client_app = load_factory(client_ref)(run_config)
    backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
               "init_args": {"num_cpus": cpus, "include_dashboard": False}}
    run_simulation(server_app, client_app, num_supernodes=supernodes, backend_config=backend)
    if not results or results[0] is None:
        raise SystemExit("federated simulation: the ServerApp did not finish")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flower_simulation", description=__doc__.split("\n")[0])
    parser.add_argument("--server-app", default=SERVER_APP_FACTORY)
    parser.add_argument("--client-app", default=CLIENT_APP_FACTORY)
    parser.add_argument("--supernodes", type=int, required=True)
    parser.add_argument("--run-config", type=Path, required=True, help="JSON file")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args(argv)
    for key, value in QUIET_FLOWER.items():
        os.environ.setdefault(key, value)
    config = json.loads(args.run_config.read_text())
    run(args.server_app, args.client_app, args.supernodes, config, args.cpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
