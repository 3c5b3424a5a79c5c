"""Who a node is and where its folders are, read from the run and node configs.

Kept apart from :mod:`.site_config` (which imports the training stack, torch included) because
the ClientApp needs the identity for every message, and in the deployment engine a fresh process
handles each one: three of SecAgg+'s four stages never train, and importing torch cost each of
them seconds.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcodec.shared.errors import FedcodecError


def _name_index(name: str) -> int:
    """A stable per-site index for deployment nodes (they have no partition id)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:6], 16)


@dataclass(frozen=True)
class SiteIdentity:
    """Who a node is and where its folders are (nothing is read yet)."""

    name: str
    data_dir: Path
    state_dir: Path
    index: int


def site_identity(run_config: Mapping[str, Any], node_config: Mapping[str, Any]) -> SiteIdentity:
    """The site's name, data folder, state folder and seed index, from its node config (deployment)
    or from the run config's ``sites`` and its partition id (simulation)."""
    if "data-dir" in node_config:
        data_dir = Path(str(node_config["data-dir"]))
        name = str(node_config.get("site") or data_dir.name)
        state_dir = Path(str(node_config.get("state-dir") or data_dir.parent / f".fedcodec-{name}"))
        return SiteIdentity(name, data_dir, state_dir, _name_index(name))
    sites = [s for s in str(run_config.get("sites", "")).split(",") if s]
    pid = int(node_config.get("partition-id", 0))
    if not sites or pid >= len(sites):
        raise FedcodecError(f"simulation node {pid}: run config 'sites' names {len(sites)} sites")
    name = sites[pid]
    data_dir = Path(str(run_config.get("data-root", ""))) / name
    root = str(run_config.get("state-root", "")) or str(Path(tempfile.gettempdir()) / "fedcodec-sim")
    return SiteIdentity(name, data_dir, Path(root) / name, pid)
