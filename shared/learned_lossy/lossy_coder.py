"""One slice through the learned lossy codec: image <-> stream, plus the latent-only paths.

Encoder: normalise and pad -> float ``g_a`` and ``h_a`` (torch; only the encoder runs them, so
their float rounding cannot desynchronise anything) -> ``z = round(h_a(y))`` -> integer
hyper-synthesis -> code ``z`` and ``q = round(y - mean)``. Decoder: decode ``z`` -> the same
integer hyper-synthesis -> decode ``q`` -> ``y_hat = q + mean`` (exact in float64) -> float
``g_s`` -> de-normalise, crop. Entropy decoding is therefore bit-exact everywhere; only the last
step (synthesis) is float, so a reconstruction may differ by a rounding between machines or
thread counts, never the decoded latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.learned_lossy.latent_coder import (
    EntropyModels,
    SymbolReader,
    SymbolWriter,
    code_latents,
)
from fedcodec.shared.learned_lossy.model import DOWNSAMPLE, MeanScaleHyperprior
from fedcodec.shared.learned_lossy.normalisation import (
    denormalise,
    normalise,
    pad,
    padded_shape,
    slice_range,
)
from fedcodec.shared.learned_lossy.stream_format import KIND_LOSSY, StreamHeader, pack, unpack
from fedcodec.shared.learned_lossy.weights import LossyWeights


@dataclass
class LossyRuntime:
    weights: LossyWeights
    models: EntropyModels
    model: MeanScaleHyperprior


@lru_cache(maxsize=2)
def load_runtime(path: str) -> LossyRuntime:
    """Weights, their constriction tables and torch transforms, loaded once per process."""
    if not Path(path).exists():
        raise CorruptDataError(f"learned-lossy weights {path} are missing")
    weights = LossyWeights.load(Path(path))
    return LossyRuntime(weights, EntropyModels(weights), weights.float_model())


def _z_shape(runtime: LossyRuntime, rows: int, cols: int) -> tuple[int, int, int]:
    pr, pc = padded_shape(rows, cols)
    return runtime.weights.cfg.nz, pr // DOWNSAMPLE, pc // DOWNSAMPLE


@torch.no_grad()
def _analyse(runtime: LossyRuntime, image: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """(gained y as float32 (m, h, w), z rounded as int64 (nz, h/4, w/4))."""
    lo, hi = slice_range(image)
    x = torch.from_numpy(normalise(pad(image), lo, hi))[None, None]
    y = runtime.model.g_a(x)[0].numpy() * runtime.weights.gain[quality - 1][:, None, None]
    z = runtime.model.h_a(torch.from_numpy(y)[None])[0].numpy()
    return y, np.rint(z.astype(np.float64)).astype(np.int64)


def latents_from_symbols(runtime: LossyRuntime, q: np.ndarray, mean_q8: np.ndarray,
                         quality: int, gained: bool) -> np.ndarray:
    """``y_hat = q + mean`` (exact), times the inverse gain unless ``gained`` (float32)."""
    y_hat = (q + mean_q8 / 256.0).astype(np.float32)
    if gained:
        return y_hat
    return y_hat * runtime.weights.inverse_gain[quality - 1][:, None, None]


def encode_lossy(runtime: LossyRuntime, image: np.ndarray, bits: int, quality: int) -> bytes:
    lo, hi = slice_range(image)
    y, z = _analyse(runtime, image, quality)
    writer = SymbolWriter()
    code_latents(writer, runtime.models, z.shape, z=z, y_float=y)
    header = StreamHeader(KIND_LOSSY, quality, bits, image.dtype == np.uint16, image.shape[0],
                          image.shape[1], lo, hi, runtime.weights.model_id)
    return pack(header, [writer.finish()])


def encode_latents_array(runtime: LossyRuntime, image: np.ndarray, quality: int,
                         gained: bool = False) -> np.ndarray:
    """The y_hat the encoder writes for ``image`` (without writing anything)."""
    y, z = _analyse(runtime, image, quality)
    mean_q8, _ = runtime.models.hyper(z)
    q = np.clip(np.rint(y.astype(np.float64) - mean_q8 / 256.0), -(1 << 15), (1 << 15) - 1)
    return latents_from_symbols(runtime, q.astype(np.int64), mean_q8, quality, gained)


def _check_header(runtime: LossyRuntime, header: StreamHeader) -> None:
    if header.model_id != runtime.weights.model_id:
        raise CorruptDataError(
            f"neural-lossy stream was written with model {header.model_id.hex()}, this build has "
            f"{runtime.weights.model_id.hex()}"
        )


def decode_symbols(runtime: LossyRuntime, data: bytes) -> tuple[StreamHeader, np.ndarray, np.ndarray]:
    """Parse a lossy stream and entropy-decode it: (header, q, mean_q8)."""
    header, sections = unpack(data)
    if header.kind != KIND_LOSSY:
        raise CorruptDataError("not a lossy neural-lossy stream (it is a hybrid stream)")
    _check_header(runtime, header)
    if not 1 <= header.quality <= runtime.weights.cfg.qualities or header.hi <= header.lo:
        raise CorruptDataError(f"neural-lossy stream: bad quality {header.quality} or range")
    try:
        reader = SymbolReader(sections[0])
        _, q, mean_q8 = code_latents(reader, runtime.models,
                                     _z_shape(runtime, header.rows, header.cols))
        clean = reader.coder.is_empty()
    except CorruptDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - constriction raises assorted errors on bad data
        raise CorruptDataError(f"neural-lossy stream does not decode: {exc}") from None
    if not clean:
        raise CorruptDataError("neural-lossy stream is corrupt (rANS data left over)")
    return header, q, mean_q8


@torch.no_grad()
def decode_lossy(runtime: LossyRuntime, data: bytes) -> np.ndarray:
    header, q, mean_q8 = decode_symbols(runtime, data)
    y_hat = latents_from_symbols(runtime, q, mean_q8, header.quality, gained=False)
    x = runtime.model.g_s(torch.from_numpy(np.ascontiguousarray(y_hat))[None])[0, 0].numpy()
    out = denormalise(x[: header.rows, : header.cols], header.lo, header.hi, header.bits)
    return out.astype(np.uint16 if header.uint16 else np.uint8)
