"""A site's side of a real federation: its SuperNode key pair and the SuperNode command.

The site keeps its private key; the coordinator registers only the public key (OpenSSH,
EC P-384). The SuperNode is pointed at the site's own DICOM folder through ``--node-config``;
the folder, the accountant and the sample cache never leave the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedcodec.shared.crypto.private_files import write_private_file
from fedcodec.shared.errors import FedcodecError

PRIVATE_KEY = "supernode.key"
PUBLIC_KEY = "supernode.pub"


def create_node_keys(key_dir: Path, force: bool = False) -> tuple[Path, Path]:
    """Write ``supernode.key`` (0600) and ``supernode.pub`` into ``key_dir``."""
    key_dir = Path(key_dir)
    private, public = key_dir / PRIVATE_KEY, key_dir / PUBLIC_KEY
    if not force and (private.exists() or public.exists()):
        raise FedcodecError(f"SuperNode keys already exist in {key_dir} (use --force to replace)")
    key_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    write_private_file(private, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH))
    return private, public


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def supernode_command(superlink: str, root_cert: Path, key_dir: Path, data_dir: Path, site: str,
                      state_dir: Path, port: int, target_epsilon: float | None = None) -> list[str]:
    """``flower-supernode`` over TLS with node authentication, for this site's folder."""
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise FedcodecError(f"site data folder {data_dir} does not exist")
    node_config = (f"data-dir={_quote(str(data_dir))} site={_quote(site)} "
                   f"state-dir={_quote(str(Path(state_dir).resolve()))}")
    if target_epsilon is not None:
        node_config += f" target-epsilon={float(target_epsilon)!r}"
    return [
        str(Path(sys.executable).parent / "flower-supernode"),
        "--root-certificates", str(Path(root_cert).resolve()),
        "--superlink", superlink,
        "--auth-supernode-private-key", str(Path(key_dir) / PRIVATE_KEY),
        "--auth-supernode-public-key", str(Path(key_dir) / PUBLIC_KEY),
        "--node-config", node_config,
        "--port", str(port),
    ]


def supernode_env(state_dir: Path) -> dict[str, str]:
    """Environment of a site's SuperNode: its own FLWR_HOME under the state folder, no runtime
    installs, no telemetry, and this interpreter's ``bin`` first on PATH."""
    import os

    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(Path(state_dir).resolve() / "flwr"),
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        FLWR_TELEMETRY_ENABLED="0",
        RAY_USAGE_STATS_ENABLED="0",
        MLFLOW_DISABLE_TELEMETRY="true",
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    )
    return env
