"""What a site reads from the run config (set by the server operator) and its node config (its own).

The run config carries the training recipe, the same for every site; the node config carries what
only the site decides: its DICOM folder (``data-dir``), its name (``site``), where its accountant
and caches live (``state-dir``) and, optionally, a *stricter* privacy target
(``target-epsilon``: the site keeps the smaller of its own and the run's). In simulation there is
no node config beyond a partition id, so ``sites`` and ``data-root`` in the run config name the
folders instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcodec.client.federated.dp_training import LocalTrainConfig
from fedcodec.client.federated.site_data import SiteDataConfig
from fedcodec.client.federated.site_identity import site_identity
from fedcodec.client.federated.site_policy import (
    SitePolicy,
    effective_policy,
    requested_metrics,
)
from fedcodec.shared.errors import FedcodecError


def _get(config: Mapping[str, Any], key: str, default: Any) -> Any:
    value = config.get(key, default)
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    return type(default)(value) if default is not None and value is not None else value


@dataclass(frozen=True)
class SiteConfig:
    """Everything one site needs for one federated run."""

    name: str
    data_dir: Path
    state_dir: Path
    data: SiteDataConfig
    train: LocalTrainConfig
    target_epsilon: float
    delta: float
    mechanism: str
    update_clip: float
    hidden: int
    depth: int
    policy: SitePolicy = SitePolicy()
    """The site's own privacy policy (state folder + node config), already checked against the run."""
    metrics: tuple[str, ...] = ()
    """Optional scalars this round may report: asked by the run *and* allowed by the policy."""


def site_seed(seed: int, site_index: int) -> int:
    """The training seed of site ``site_index``: distinct per site, so that with
    ``reproducible-noise`` no two sites draw the same DP noise (identical noise at every site
    would not average out in the mean update). experiments/federated_compare.py uses the same
    rule for its in-process federation."""
    return seed + 101 * site_index


def site_config(run_config: Mapping[str, Any], node_config: Mapping[str, Any]) -> SiteConfig:
    """Merge the run config and this node's config into a :class:`SiteConfig`."""
    identity = site_identity(run_config, node_config)
    name, data_dir, state_dir, index = (identity.name, identity.data_dir, identity.state_dir,
                                        identity.index)
    if not data_dir.is_dir():
        raise FedcodecError(f"site {name}: data folder {data_dir} does not exist")
    unit = _get(run_config, "unit", "patient")
    rounds = _get(run_config, "num-server-rounds", 3)
    noise = float(run_config.get("noise-multiplier", 0.0) or 0.0)
    target = _get(run_config, "target-epsilon", 8.0)
    policy = effective_policy(state_dir, node_config)
    # check_run refused any run above the site's cap; min() keeps a direct caller within it too
    target = min(target, policy.max_epsilon)
    seed = _get(run_config, "seed", 0)
    return SiteConfig(
        name=name,
        data_dir=data_dir,
        state_dir=state_dir,
        data=SiteDataConfig(unit=unit, pixels_per_group=_get(run_config, "pixels-per-group", 256),
                            max_slices=_get(run_config, "max-slices", 32),
                            holdout_fraction=_get(run_config, "holdout-fraction", 0.25), seed=seed),
        train=LocalTrainConfig(steps=_get(run_config, "local-steps", 20),
                               batch_units=_get(run_config, "batch-units", 8.0),
                               sample_rate=float(run_config.get("sample-rate", 0.0) or 0.0) or None,
                               pixels_per_unit=_get(run_config, "pixels-per-unit", 64),
                               lr=_get(run_config, "lr", 2e-3), dp=_get(run_config, "dp", True),
                               max_grad_norm=_get(run_config, "max-grad-norm", 1.0),
                               noise_multiplier=noise or None, planned_rounds=rounds,
                               seed=site_seed(seed, index),
                               reproducible_noise=_get(run_config, "reproducible-noise", False)),
        target_epsilon=target,
        delta=_get(run_config, "delta", 1e-5),
        mechanism=_get(run_config, "accountant", "rdp"),
        update_clip=_get(run_config, "update-clip", 4.0),
        hidden=_get(run_config, "hidden", 32),
        depth=_get(run_config, "depth", 2),
        policy=policy,
        metrics=tuple(m for m in requested_metrics(run_config) if m in policy.metrics),
    )
