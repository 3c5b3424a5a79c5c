"""rANS coding of the quantised latents (constriction), identical walk at encoder and decoder.

Order in the stream (decoding order): ``z`` symbols channel by channel with each channel's
table, ``z`` escapes raw; then the integer hyper-synthesis turns ``z`` into each ``y`` latent's
mean and table index; then ``y`` symbols table by table (ascending index, raster order inside
a table), ``y`` escapes raw. The encoder records these operations in that order and pushes them
on the ANS stack in reverse at the end (a stack decodes last-in first-out), so both sides walk the
same function and cannot drift apart.
"""

from __future__ import annotations

import itertools

import constriction
import numpy as np
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.learned_lossy.entropy_tables import RAW_HALF, Z_HALF, half_width, scale_index
from fedcodec.shared.learned_lossy.integer_hyper import IntegerHyperSynthesis
from fedcodec.shared.learned_lossy.weights import LossyWeights

_model = constriction.stream.model


class EntropyModels:
    """constriction models built once per weights (the integer counts passed as floats)."""

    def __init__(self, weights: LossyWeights) -> None:
        self.y = [_model.Categorical(c.astype(np.float64), perfect=False) for c in weights.y_counts]
        self.y_half = np.array([half_width(k) for k in range(len(weights.y_counts))])
        self.z = [_model.Categorical(c.astype(np.float64), perfect=False) for c in weights.z_counts]
        self.raw = _model.Uniform(2 * RAW_HALF)
        self.hyper: IntegerHyperSynthesis = weights.integer_hyper()


class SymbolWriter:
    """Records (symbols, model) in decoding order; :meth:`finish` pushes them reversed."""

    def __init__(self) -> None:
        self.ops: list[tuple[np.ndarray, object]] = []

    def code(self, symbols: np.ndarray | None, count: int, model) -> np.ndarray:
        symbols = np.ascontiguousarray(symbols, dtype=np.int32)
        if symbols.size:
            self.ops.append((symbols, model))
        return symbols

    def finish(self) -> bytes:
        coder = constriction.stream.stack.AnsCoder()
        for symbols, model in reversed(self.ops):
            coder.encode_reverse(symbols, model)
        return coder.get_compressed().astype("<u4").tobytes()


class SymbolReader:
    def __init__(self, payload: bytes) -> None:
        if len(payload) % 4:
            raise CorruptDataError("neural-lossy stream: payload is not whole 32-bit words")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        self.coder = constriction.stream.stack.AnsCoder(words)

    def code(self, symbols: np.ndarray | None, count: int, model) -> np.ndarray:
        if not count:
            return np.zeros(0, dtype=np.int32)
        return np.asarray(self.coder.decode(model, count), dtype=np.int32)


def _code_grouped(io, keys: np.ndarray, values: np.ndarray | None, halves: np.ndarray,
                  models: list, raw_model) -> np.ndarray:
    """Code integer ``values`` (None when decoding), each with the table its key names."""
    n = keys.size
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sorted_keys)) + 1, [n]])
    half = halves[keys]
    if values is not None:
        escaped = np.abs(values) > half
        symbols = np.where(escaped, 2 * half + 1, values + half)
    else:
        symbols = np.empty(n, dtype=np.int64)
    for a, b in itertools.pairwise(starts):
        if b == a:
            continue
        idx = order[a:b]
        model = models[int(sorted_keys[a])]
        symbols[idx] = io.code(symbols[idx] if values is not None else None, b - a, model)
    escaped = symbols == 2 * half + 1
    out = symbols.astype(np.int64) - half
    n_escaped = int(escaped.sum())
    if values is not None:
        io.code(values[escaped] + RAW_HALF, n_escaped, raw_model)
        return values
    if n_escaped:
        out[escaped] = io.code(None, n_escaped, raw_model).astype(np.int64) - RAW_HALF
    return out


def code_latents(io, models: EntropyModels, z_shape: tuple[int, int, int],
                 z: np.ndarray | None = None, y: np.ndarray | None = None,
                 y_float: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode (``z`` and ``y_float`` given) or decode (neither) the latents of one slice.

    ``z``: (nz, hz, wz) int64; ``y_float``: gained analysis output (m, 4hz, 4wz). Returns
    ``(z, q, mean_q8)``: y_hat = q + mean_q8 / 256.
    """
    nz = z_shape[0]
    z_keys = np.repeat(np.arange(nz), z_shape[1] * z_shape[2])
    z_flat = None if z is None else np.clip(z, -RAW_HALF, RAW_HALF - 1).reshape(-1)
    z_halves = np.full(nz, Z_HALF)
    z_flat = _code_grouped(io, z_keys, z_flat, z_halves, models.z, models.raw)
    z = z_flat.reshape(z_shape)
    mean_q8, log2_scale_q8 = models.hyper(z)
    k = scale_index(log2_scale_q8).reshape(-1)
    q = None
    if y_float is not None:
        q = np.rint(y_float.astype(np.float64) - mean_q8 / 256.0).astype(np.int64)
        q = np.clip(q, -RAW_HALF, RAW_HALF - 1).reshape(-1)
    q = _code_grouped(io, k, q, models.y_half, models.y, models.raw)
    return z, q.reshape(mean_q8.shape), mean_q8
