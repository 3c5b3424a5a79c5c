"""Training pixels grouped by privacy unit: what one row of a DP-SGD batch is made of.

Pixels come from :func:`fedcodec.shared.neural.train.collect_slice_samples` (the codec's walk,
features and reference choice, as the centralised trainer samples), run on one contiguous block
of slices per series so references stay real neighbours. It returns the samples grouped per
slice, so the slice unit needs no knowledge of how the trainer orders its chunks; patient, study
and series units take all of a series' slices. Every kept pixel is filed under its privacy unit,
so Poisson sampling and per-unit clipping act on patients (or studies, series, slices), never on
single pixels.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from fedcodec.shared.dicom import Series
from fedcodec.shared.neural.features import feature_count
from fedcodec.shared.neural.geometry import GROUPS
from fedcodec.shared.neural.train import collect_slice_samples
from fedcodec.shared.neural.weights import MAX_REFS, NET_KEYS, net_key
from fedcodec.shared.privacy import privacy_unit

FIELDS = ("features", "target", "mu0", "s16", "log_s16", "maxval")


@dataclass
class KeyPool:
    """All units' pixels for one network, concatenated; unit ``u`` owns rows
    ``offsets[u] : offsets[u] + counts[u]``."""

    arrays: dict[str, np.ndarray]
    offsets: np.ndarray
    counts: np.ndarray


@dataclass
class UnitSamples:
    """Per-network pools over the same ordered list of privacy units."""

    unit: str
    unit_ids: list[str]
    pools: dict[str, KeyPool] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    def pixel_count(self) -> int:
        return int(sum(p.counts.sum() for p in self.pools.values()))


def _series_chunks(s: Series, unit: str, pixels_per_group: int, max_slices: int,
                   rng: np.random.Generator) -> list[tuple[str, str, list[np.ndarray]]]:
    """(unit id, network, [field arrays...]) chunks of one series.

    Each full-resolution group keeps about ``pixels_per_group`` pixels of every slice.
    """
    volume = s.volume
    if volume.dtype.kind == "i":  # signed stored values: train on the unsigned view the codec codes
        volume = (volume.astype(np.int64) - int(volume.min())).astype(np.uint16)
    n = volume.shape[0]
    start = int(rng.integers(0, n - max_slices + 1)) if n > max_slices else 0
    block = np.ascontiguousarray(volume[start:start + max_slices])
    fraction = min(1.0, 4.0 * pixels_per_group / int(block.shape[1] * block.shape[2]))
    per_slice = collect_slice_samples(block, s.bits_stored, fraction, int(rng.integers(1 << 31)))
    out = []
    for item in per_slice:
        if unit == "slice":
            uid = privacy_unit(s, "slice", slice_index=start + item.index)
        else:
            uid = privacy_unit(s, unit)
        for key, smp in item.samples.items():
            for i in range(len(smp.target)):
                out.append((uid, key, [getattr(smp, f)[i] for f in FIELDS]))
    return out


def collect_unit_samples(series: list[Series], unit: str = "patient", pixels_per_group: int = 256,
                         max_slices: int = 32, seed: int = 0) -> UnitSamples:
    """Sample up to ``max_slices`` contiguous slices of every series, filed by privacy unit."""
    rng = np.random.default_rng(seed)
    by_unit: dict[str, dict[str, list[list[np.ndarray]]]] = defaultdict(lambda: defaultdict(list))
    for s in series:
        for uid, key, arrays in _series_chunks(s, unit, pixels_per_group, max_slices, rng):
            by_unit[uid][key].append(arrays)
    unit_ids = sorted(by_unit)
    n_features = {net_key(g.name, n): feature_count(g, n) for n in range(MAX_REFS + 1) for g in GROUPS}
    pools = {}
    for key in NET_KEYS:
        per_unit = [by_unit[u].get(key, []) for u in unit_ids]
        counts = np.array([sum(c[1].size for c in chunks) for chunks in per_unit], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        arrays = {}
        for j, name in enumerate(FIELDS):
            parts = [c[j] for chunks in per_unit for c in chunks]
            if parts:
                arrays[name] = np.concatenate(parts)
            elif name == "features":
                arrays[name] = np.zeros((0, n_features[key]), dtype=np.int16)
            else:
                arrays[name] = np.zeros(0, dtype=np.int32)
        pools[key] = KeyPool(arrays, offsets, counts)
    return UnitSamples(unit, unit_ids, pools)


def merge_unit_samples(parts: list[UnitSamples]) -> UnitSamples:
    """Concatenate the units of several sample sets (centralised baselines only)."""
    ids = [f"{i}:{u}" for i, p in enumerate(parts) for u in p.unit_ids]
    pools = {}
    for key in NET_KEYS:
        arrays = {name: np.concatenate([p.pools[key].arrays[name] for p in parts]) for name in FIELDS}
        counts = np.concatenate([p.pools[key].counts for p in parts])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        pools[key] = KeyPool(arrays, offsets, counts)
    return UnitSamples(parts[0].unit, ids, pools)
