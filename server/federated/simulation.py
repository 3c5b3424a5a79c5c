"""Run a whole federation in one process with Flower's simulation engine (Ray).

The coordinator runs it (``fedcodec-server federation simulate``): the ServerApp and the
ClientApp are given as *references* (``module:factory`` strings, the same components
``[tool.flwr.app.components]`` names) and loaded by name, as ``flwr run`` would, so site code is
never imported by the server's modules. Each factory is called with the run config, so no
pyproject or SuperLink is needed. It returns when the ServerApp finished; the results live where
the run config says (checkpoint folder, MLflow store).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from fedcodec.shared.errors import FedcodecError

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


def quiet_flower_environment() -> None:
    """No telemetry, no run-time package installs (they would pull CUDA torch)."""
    for key, value in QUIET_FLOWER.items():
        os.environ.setdefault(key, value)


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
        raise FedcodecError("federated simulation: the ServerApp did not finish (a round that "
                            "cannot aggregate stops the run: sites lost or refusing, see the log "
                            "above)")
