"""The shipped model: integer networks per (group, number of reference slices) plus count tables.

A weights file is an ``.npz`` of integer arrays. Its *model id* is the first 4 bytes of the
SHA-256 of those arrays in a canonical order (not of the zip file, whose bytes depend on zlib and
timestamps); every stream carries it so a decoder never silently uses other weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural.fixed_point import (
    BIAS_LIMIT,
    MAX_FAN_IN,
    ONE,
    QW,
    WEIGHT_LIMIT,
    exact_layer_columns,
)
from fedcodec.shared.neural.geometry import GROUPS
from fedcodec.shared.neural.tables import (
    ALPHABET,
    CENTRE_PHASE,
    N_BINS,
    PHASES,
    logistic_counts,
)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED = ("neural_v3", "neural_v2", "neural_v1")
"""Shipped models, newest (the default) first. An older one stays shipped so the streams it
wrote keep decoding: a decoder picks the model by the id in the stream (:func:`shipped_with_id`)."""
DEFAULT_WEIGHTS = WEIGHTS_DIR / f"{SHIPPED[0]}.npz"
MAX_REFS = 2
MEAN_CLAMP = 64 * ONE
LOG_SCALE_CLAMP = 24 * ONE


def shipped_path(name: str) -> Path | None:
    """The file of a shipped model by name (``neural_v1``), else None."""
    return WEIGHTS_DIR / f"{name}.npz" if name in SHIPPED else None


@lru_cache(maxsize=1)
def _shipped_ids() -> tuple[tuple[bytes, Path], ...]:
    return tuple((NeuralWeights.load(WEIGHTS_DIR / f"{name}.npz").model_id,
                  WEIGHTS_DIR / f"{name}.npz") for name in SHIPPED)


def shipped_with_id(model_id: bytes) -> Path | None:
    """The shipped model whose id starts with ``model_id`` (a stream's prefix), else None."""
    return next((path for full, path in _shipped_ids() if full[: len(model_id)] == model_id),
                None) if model_id else None


def shipped_name(model_id: bytes) -> str | None:
    """The name (``neural_v1``) of the shipped model whose id starts with ``model_id``."""
    path = shipped_with_id(model_id)
    return None if path is None else path.stem


def net_key(group_name: str, n_refs: int) -> str:
    return f"{group_name}{n_refs}"


NET_KEYS = tuple(net_key(g.name, n) for n in range(MAX_REFS + 1) for g in GROUPS)


@dataclass
class IntegerMlp:
    """A per-pixel MLP in fixed point (see ``fixed_point``): Q4 activations, Q8 weights.

    Outputs (Q4): the mean offset in units of local activity, and the log2-scale offset.
    """

    weights: list[np.ndarray]
    """(fan_in, fan_out) float32 arrays holding integers (Q8), |w| <= WEIGHT_LIMIT."""
    biases: list[np.ndarray]
    """(fan_out,) float32 arrays holding integers (Q12), |b| <= BIAS_LIMIT."""

    def __post_init__(self) -> None:
        self.weights = [np.asarray(w, dtype=np.float32) for w in self.weights]
        self.biases = [np.asarray(b, dtype=np.float32) for b in self.biases]
        for w, b in zip(self.weights, self.biases):
            if (w.shape[0] > MAX_FAN_IN or np.abs(w).max(initial=0) > WEIGHT_LIMIT
                    or np.abs(b).max(initial=0) > BIAS_LIMIT or (w != np.round(w)).any()
                    or (b != np.round(b)).any()):
                raise ValueError("network parameters outside the exact-arithmetic bounds")
        scale = np.float32(1.0 / (1 << QW))
        self._columns = [(np.ascontiguousarray(w.T) * scale, b[:, None] * scale)
                         for w, b in zip(self.weights, self.biases)]
        """The layers as :func:`exact_layer_columns` takes them: (fan_out, fan_in) weights and
        (fan_out, 1) biases, both times 2**-QW (exact: a power of two)."""

    @property
    def fan_in(self) -> int:
        return self.weights[0].shape[0]

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``features``: (n_features, n) float32 Q4 integers within +-ACT_LIMIT."""
        x = features
        last = len(self._columns) - 1
        for i, (w, b) in enumerate(self._columns):
            x = exact_layer_columns(x, w, b, hidden=i < last)  # == exact_layer(x.T, ...).T
        out = x.astype(np.int64)
        mean = np.clip(out[0], -MEAN_CLAMP, MEAN_CLAMP)
        log_scale = np.clip(out[1], -LOG_SCALE_CLAMP, LOG_SCALE_CLAMP)
        return mean, log_scale


@dataclass
class NeuralWeights:
    """Everything the codec needs besides the bitstream."""

    nets: dict[str, IntegerMlp]
    counts: np.ndarray
    """(N_BINS * PHASES, ALPHABET) int64 table counts."""
    meta: dict = field(default_factory=dict)
    cell_counts: dict[int, np.ndarray] = field(default_factory=dict)
    """Near-lossless tables, {bound T: (N_BINS, ALPHABET) counts}: the centre-phase table of each
    scale bin (the only ones cells use) fitted to coding cells of 2T+1 levels on reconstructed
    contexts (``experiments/cell_tables.py``). A stream at tau uses the set of the largest bound
    <= tau when tau is at most twice it (:meth:`table_bound`); otherwise the lossless tables.
    Part of the model id, so a stream's model fixes its tables."""

    def __post_init__(self) -> None:
        if self.counts.shape != (N_BINS * PHASES, ALPHABET) or self.counts.min() < 1:
            raise ValueError("count tables have the wrong shape or a zero count")
        for bound, table in self.cell_counts.items():
            if bound < 1 or table.shape != (N_BINS, ALPHABET) or table.min() < 1:
                raise ValueError(f"near-lossless tables for bound {bound} have the wrong "
                                 "shape or a zero count")
        self.feature_set = self._feature_set()
        self.model_id = self._model_id()
        self._counts_at: dict[int, np.ndarray] = {}

    def table_bound(self, tau: int) -> int:
        """The bound whose near-lossless tables a stream at ``tau`` may use (the encoder decides
        per slice, :func:`.adaptive_encoder._code_recorded`): the largest fitted bound
        ``b <= tau``, if ``tau <= 2 b``; else 0, the lossless tables only. A cell shape does not
        stretch far beyond the cells it was fitted to, so a ladder covers the bounds it serves."""
        bound = max((b for b in self.cell_counts if b <= tau), default=0)
        return bound if tau <= 2 * bound else 0

    def counts_for(self, tau: int) -> np.ndarray:
        """The (N_BINS * PHASES, ALPHABET) tables a stream at ``tau`` codes with: the lossless
        tables, with each scale bin's centre-phase table from :meth:`table_bound`'s set."""
        bound = self.table_bound(tau)
        if not bound:
            return self.counts
        if bound not in self._counts_at:
            counts = self.counts.copy()
            counts[np.arange(N_BINS) * PHASES + CENTRE_PHASE] = self.cell_counts[bound]
            self._counts_at[bound] = counts
        return self._counts_at[bound]

    def _feature_set(self) -> int:
        """The context layout the networks take (``features.FEATURE_SETS``), read from their
        fan-in: it is part of the model id, so a stream's model id fixes it too."""
        from fedcodec.shared.neural.features import feature_set_of

        groups = {g.name: g for g in GROUPS}
        found = {feature_set_of(groups[key[0]], int(key[1:]), net.fan_in)
                 for key, net in self.nets.items()}
        if len(found) > 1:
            raise ValueError(f"networks mix feature sets {sorted(found)}")
        return found.pop() if found else 1

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"counts": self.counts.astype(np.int64)}
        for bound, table in sorted(self.cell_counts.items()):  # none in v1/v2: ids unchanged
            arrays[f"cell_counts.{bound}"] = table.astype(np.int64)
        for key, net in sorted(self.nets.items()):
            for i, (w, b) in enumerate(zip(net.weights, net.biases)):
                arrays[f"{key}.w{i}"] = w.astype(np.int64)
                arrays[f"{key}.b{i}"] = b.astype(np.int64)
        return arrays

    def _model_id(self) -> bytes:
        digest = hashlib.sha256()
        for name, arr in sorted(self._arrays().items()):
            digest.update(name.encode())
            digest.update(np.asarray(arr.shape, dtype="<i8").tobytes())
            digest.update(arr.astype("<i8").tobytes())
        return digest.digest()[:4]

    def net(self, group_name: str, n_refs: int) -> IntegerMlp:
        return self.nets[net_key(group_name, n_refs)]

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename)."""
        path = Path(path)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, meta=np.array(json.dumps(self.meta)), **self._arrays())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> NeuralWeights:
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                counts = z["counts"].astype(np.int64)
                cells = {int(name.split(".", 1)[1]): z[name].astype(np.int64)
                         for name in z.files if name.startswith("cell_counts.")}
                nets = {}
                for key in NET_KEYS:
                    ws, bs, i = [], [], 0
                    while f"{key}.w{i}" in z:
                        ws.append(z[f"{key}.w{i}"].astype(np.float32))
                        bs.append(z[f"{key}.b{i}"].astype(np.float32))
                        i += 1
                    if ws:
                        nets[key] = IntegerMlp(ws, bs)
        except (OSError, KeyError, ValueError) as exc:
            raise CorruptDataError(f"cannot read neural weights {path}: {exc}") from None
        missing = [k for k in NET_KEYS if k not in nets]
        if missing:
            raise CorruptDataError(f"neural weights {path} lack networks {', '.join(missing)}")
        try:
            return cls(nets, counts, meta, cells)
        except ValueError as exc:
            raise CorruptDataError(f"neural weights {path}: {exc}") from None


def untrained_weights(hidden: int = 32, seed: int = 0, feature_set: int = 1) -> NeuralWeights:
    """Networks whose output is zero (mean = mu0, scale = local activity) and logistic tables.

    The codec is correct with any weights; these serve tests of the bitstream machinery.
    """
    from fedcodec.shared.neural.features import feature_count

    rng = np.random.default_rng(seed)
    nets = {}
    for n_refs in range(MAX_REFS + 1):
        for g in GROUPS:
            fan_in = feature_count(g, n_refs, feature_set)
            ws = [
                np.clip(np.round(rng.normal(0, (1 << QW) / np.sqrt(fan_in), (fan_in, hidden))),
                        -WEIGHT_LIMIT, WEIGHT_LIMIT),
                np.clip(np.round(rng.normal(0, (1 << QW) / np.sqrt(hidden), (hidden, hidden))),
                        -WEIGHT_LIMIT, WEIGHT_LIMIT),
                np.zeros((hidden, 2)),
            ]
            bs = [np.zeros(hidden), np.zeros(hidden), np.zeros(2)]
            nets[net_key(g.name, n_refs)] = IntegerMlp(ws, bs)
    return NeuralWeights(nets, logistic_counts(), {"name": "untrained", "hidden": hidden})
