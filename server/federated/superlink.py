"""The coordinator's side of a real federation: TLS material, the SuperLink, node registration.

A federation folder holds everything the coordinator owns::

    <dir>/ca/             CA key + certificate (server/pki.py); sites get only ``ca.pem``
    <dir>/tls/            SuperLink certificate for the host names / IPs sites dial
    <dir>/flwr/           FLWR_HOME: the ``flwr`` CLI's SuperLink connection (config.toml)
    <dir>/superlink.db    SuperLink state (registered SuperNodes, runs)
    <dir>/sites.json      site names given at ``register`` (node id -> name; Flower lists ids only)
    <dir>/server/         checkpoint, MLflow sqlite store, final codec weights

The SuperLink always runs with TLS and ``--enable-supernode-auth``: only SuperNodes whose public
key the coordinator registered (``flwr supernode register``) can connect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fedcodec.server.pki import init_ca, issue_server
from fedcodec.shared.errors import FedcodecError

CONNECTION = "fedcodec"


def flower_env(flwr_home: Path) -> dict[str, str]:
    """Environment for Flower processes: no runtime installs, no telemetry, a local FLWR_HOME,
    and this interpreter's ``bin`` first on PATH (the SuperLink starts ``flower-superexec``)."""
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(flwr_home),
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        FLWR_TELEMETRY_ENABLED="0",
        RAY_USAGE_STATS_ENABLED="0",
        MLFLOW_DISABLE_TELEMETRY="true",
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    )
    return env


@dataclass(frozen=True)
class FederationDir:
    """Paths of a coordinator's federation folder."""

    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def flwr_home(self) -> Path:
        return self.root / "flwr"

    @property
    def ca_cert(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def server_dir(self) -> Path:
        return self.root / "server"


def init_federation(root: Path, address: str, hosts: tuple[str, ...] = ("localhost",),
                    ips: tuple[str, ...] = ("127.0.0.1",), force: bool = False) -> FederationDir:
    """Create the CA, the SuperLink certificate and the ``flwr`` connection to ``address``."""
    fed = FederationDir(Path(root))
    if force or not (fed.ca_dir / "ca.pem").exists():
        init_ca(fed.ca_dir, name="fedcodec federation CA", force=force)
    if force or not (fed.tls_dir / "server.pem").exists():
        issue_server(fed.ca_dir, fed.tls_dir, hosts=hosts, ips=ips, force=force)
    write_connection(fed.flwr_home, address, fed.ca_cert)
    return fed


def write_connection(flwr_home: Path, address: str, root_cert: Path) -> Path:
    """The ``flwr`` CLI's connection ``fedcodec`` -> ``address`` over TLS (atomic write)."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    path = flwr_home / "config.toml"
    text = (f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{address}"\nroot-certificates = "{Path(root_cert).resolve()}"\n')
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def superlink_command(fed: FederationDir, host: str, port: int,
                      health_address: str | None = None) -> list[str]:
    """``flower-superlink`` with TLS, SuperNode authentication and a persistent database; with
    ``health_address`` also Flower's gRPC health service (standard ``grpc.health.v1``, no TLS: bind
    it to an address only the orchestrator reaches)."""
    health = ["--health-server-address", health_address] if health_address else []
    return [
        str(Path(sys.executable).parent / "flower-superlink"),
        "--ssl-ca-certfile", str(fed.ca_cert),
        "--ssl-certfile", str(fed.tls_dir / "server.pem"),
        "--ssl-keyfile", str(fed.tls_dir / "server.key"),
        "--enable-supernode-auth",
        "--host", host, "--port", str(port),
        "--database", str(fed.root / "superlink.db"),
        *health,
    ]


def _flwr_json(fed: FederationDir, args: list[str], timeout: float) -> dict:
    """Run ``flwr ARGS --format json`` against this federation's SuperLink; its JSON answer."""
    cmd = [str(Path(sys.executable).parent / "flwr"), *args, "--format", "json"]
    try:
        done = subprocess.run(cmd, env=flower_env(fed.flwr_home), capture_output=True, text=True,
                              check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FedcodecError(f"flwr {args[0]} {args[1]}: no answer from the SuperLink in "
                            f"{timeout:g}s") from None
    text = done.stdout
    try:
        return json.loads(text[text.index("{"):])
    except ValueError:
        lines = (done.stdout + done.stderr).strip().splitlines()
        raise FedcodecError(f"flwr {args[0]} {args[1]}: {lines[-1] if lines else 'no output'}") from None


def _last_line(message: str) -> str:
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def register_supernode(fed: FederationDir, public_key: Path, name: str = "",
                       timeout: float = 120.0) -> str:
    """Register a site's SuperNode public key (OpenSSH EC) with the running SuperLink.

    Idempotent: a key the SuperLink already knows is reported, not an error (the SuperLink
    refuses duplicates with "Public key already in use")."""
    if not Path(public_key).is_file():
        raise FedcodecError(f"no public key file {public_key}")
    args = ["supernode", "register", str(public_key), CONNECTION]
    if name:
        args += ["--name", name]
    answer = _flwr_json(fed, args, timeout)
    if answer.get("success"):
        node = answer.get("node-id", "")
        if node:
            record_site_name(fed, str(node), name or Path(public_key).stem)
        return f"{public_key}: SuperNode {node} registered successfully.".replace("  ", " ")
    error = _last_line(answer.get("error-message", ""))
    if "already in use" in error.lower():
        return f"{public_key} is already registered (nothing to do)"
    raise FedcodecError(f"could not register {public_key}: {error}")


def site_names(fed: FederationDir) -> dict[str, str]:
    """Node id -> site name, as recorded by :func:`register_supernode` (empty if none)."""
    path = fed.root / "sites.json"
    try:
        return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def record_site_name(fed: FederationDir, node_id: str, name: str) -> None:
    names = site_names(fed)
    names[str(node_id)] = name
    path = fed.root / "sites.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(names, indent=1, sort_keys=True))
    tmp.replace(path)


def supernode_status(fed: FederationDir, timeout: float = 60.0) -> list[dict]:
    """The SuperNodes the SuperLink knows (``flwr supernode list``): id, status, last change.
    Raises :class:`FedcodecError` with one line when the SuperLink cannot be reached."""
    answer = _flwr_json(fed, ["supernode", "list", CONNECTION], timeout)
    if not answer.get("success"):
        raise FedcodecError(f"SuperLink status: {_last_line(answer.get('error-message', ''))}")
    return list(answer.get("nodes", []))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_command(fed: FederationDir, app_dir: Path, run_config: dict) -> list[str]:
    """``flwr run`` of the fedcodec app on this federation, checkpoints under ``<dir>/server``."""
    config = {"checkpoint-dir": str(fed.server_dir.resolve()), **run_config}
    overrides = " ".join(f"{k}={_toml_value(v)}" for k, v in config.items())
    return [str(Path(sys.executable).parent / "flwr"), "run", str(app_dir), CONNECTION, "--stream",
            "--run-config", overrides]
