"""A site's DICOM folder as training units and held-out series; nothing here leaves the site.

The split is deterministic (a hash of each series key), so every restart and every experiment
holds out the same series. A site with a single series holds out the trailing slices of it
instead (a contiguous block, so no held-out slice is a training slice's neighbour reference).
Sampled pixels are cached in the site's state folder, because a ClientApp may be started once per
round.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fedcodec.client.federated.unit_samples import UnitSamples, collect_unit_samples
from fedcodec.client.federated.site_survey import read_mr_series
from fedcodec.shared.dicom import Series
from fedcodec.shared.errors import FedcodecError


@dataclass(frozen=True)
class SiteDataConfig:
    """How a site turns its folder into samples."""

    unit: str = "patient"
    pixels_per_group: int = 256
    max_slices: int = 32
    holdout_fraction: float = 0.25
    seed: int = 0


@dataclass
class SiteData:
    """Training units and held-out samples of one site."""

    name: str
    train: UnitSamples
    heldout: UnitSamples
    train_series: list[str]
    heldout_series: list[str]


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_series(series: list[Series], holdout_fraction: float) -> tuple[list[Series], list[Series]]:
    """(train, held-out) series; a single series is split into leading / trailing slices."""
    if not series:
        raise FedcodecError("no series to split")
    if len(series) == 1:
        only = series[0]
        n = only.volume.shape[0]
        k = max(1, min(n - 1, round(n * (1 - holdout_fraction))))
        if n < 2:
            raise FedcodecError(f"series {only.key} has one slice; cannot hold any out")
        head = dataclasses.replace(only, volume=only.volume[:k])
        tail = dataclasses.replace(only, volume=only.volume[k:], part=only.part + 1000)
        return [head], [tail]
    ordered = sorted(series, key=lambda s: _rank(s.key))
    n_out = max(1, min(len(series) - 1, round(len(series) * holdout_fraction)))
    return ordered[n_out:], ordered[:n_out]


def _feature_signature() -> list[int]:
    """Context-vector lengths of every network: a cache made for other features is stale."""
    from fedcodec.shared.neural.features import feature_count
    from fedcodec.shared.neural.geometry import GROUPS
    from fedcodec.shared.neural.weights import MAX_REFS

    return [feature_count(g, n) for n in range(MAX_REFS + 1) for g in GROUPS]


def cache_name(data_dir: Path, config: SiteDataConfig) -> str:
    """Cache file name: the folder, the sampling config and the codec's feature layout."""
    spec = json.dumps([str(data_dir.resolve()), dataclasses.asdict(config), _feature_signature()],
                      sort_keys=True)
    return "samples-" + hashlib.sha256(spec.encode()).hexdigest()[:16] + ".pkl"


def load_site(data_dir: Path, config: SiteDataConfig, name: str = "",
              cache_dir: Path | None = None) -> SiteData:
    """Read ``data_dir``, split it, and sample training units and held-out pixels."""
    data_dir = Path(data_dir)
    if cache_dir is not None:
        cached = Path(cache_dir) / cache_name(data_dir, config)
        if cached.exists():
            with cached.open("rb") as handle:
                return pickle.load(handle)
    series, _ = read_mr_series(data_dir, name)  # MR only; skips logged per reason
    train, heldout = split_series(series, config.holdout_fraction)
    site = SiteData(
        name=name or data_dir.name,
        train=collect_unit_samples(train, config.unit, config.pixels_per_group, config.max_slices,
                                   config.seed),
        heldout=collect_unit_samples(heldout, "series", config.pixels_per_group, config.max_slices,
                                     config.seed + 1),
        train_series=[s.key for s in train],
        heldout_series=[s.key for s in heldout],
    )
    if cache_dir is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        with tmp.open("wb") as handle:
            pickle.dump(site, handle)
        tmp.replace(cached)
    return site


@lru_cache(maxsize=8)
def load_site_cached(data_dir: str, config: SiteDataConfig, name: str, cache_dir: str) -> SiteData:
    """:func:`load_site`, kept in memory for the life of the process (one per round otherwise)."""
    return load_site(Path(data_dir), config, name, Path(cache_dir) if cache_dir else None)
