"""The coordinator's side of a real federation: TLS material, the SuperLink, node registration.

A federation folder holds everything the coordinator owns::

    <dir>/ca/             CA key + certificate (server/pki.py); sites get only ``ca.pem``
    <dir>/tls/            SuperLink certificate for the host names / IPs sites dial
    <dir>/flwr/           FLWR_HOME: the ``flwr`` CLI's SuperLink connection (config.toml)
    <dir>/superlink.db    SuperLink state (registered SuperNodes, runs)
    <dir>/server/         checkpoint, MLflow sqlite store, final codec weights

The SuperLink always runs with TLS and ``--enable-supernode-auth``: only SuperNodes whose public
key the coordinator registered (``flwr supernode register``) can connect.
"""

from __future__ import annotations

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


def superlink_command(fed: FederationDir, host: str, port: int) -> list[str]:
    """``flower-superlink`` with TLS, SuperNode authentication and a persistent database."""
    return [
        str(Path(sys.executable).parent / "flower-superlink"),
        "--ssl-ca-certfile", str(fed.ca_cert),
        "--ssl-certfile", str(fed.tls_dir / "server.pem"),
        "--ssl-keyfile", str(fed.tls_dir / "server.key"),
        "--enable-supernode-auth",
        "--host", host, "--port", str(port),
        "--database", str(fed.root / "superlink.db"),
    ]


def register_supernode(fed: FederationDir, public_key: Path, name: str = "",
                       timeout: float = 120.0) -> str:
    """Register a site's SuperNode public key (OpenSSH EC) with the running SuperLink."""
    cmd = [str(Path(sys.executable).parent / "flwr"), "supernode", "register", str(public_key),
           CONNECTION]
    if name:
        cmd += ["--name", name]
    done = subprocess.run(cmd, env=flower_env(fed.flwr_home), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0 or "registered successfully" not in done.stdout:
        raise FedcodecError(f"could not register {public_key}: "
                            f"{(done.stdout + done.stderr).strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1]


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
