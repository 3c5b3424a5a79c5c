"""Hybrid bounded-error mode: a lossy base layer refined by a learned residual coder to tau.

Base layer: JPEG 2000 with the *reversible* 5/3 integer wavelet, truncated by OpenJPEG's
rate-distortion allocation at a PSNR target (imagecodecs ``level``). The 5/3 inverse is integer
lifting, so every decoder reconstructs the very same base image; the irreversible 9/7 (float)
could differ by one grey level between machines, which would desynchronise the residual coder's
context. The header also carries the CRC-32 of the decoded base, checked before refinement.

Refinement: the ``neural`` codec's near-lossless polyphase coder (``encode_slice`` with one
reference image), with its networks retrained so the reference is this base layer
(:mod:`.hybrid_train`; weights ``weights/hybrid_residual_v1.npz``). Each pixel's residual
``x - round(mean)`` is quantised with step ``2 tau + 1`` in closed loop, so every pixel is within
tau; the base gives the predictor non-causal context (the pixel itself and what lies after it).

Progressive decoding: the base section decodes alone (:func:`decode_base`, a preview), and the
refinement section turns it into the bounded reconstruction.

``base="auto"`` tries the PSNR targets in ``BASE_CANDIDATES_DB`` (relative to the slice's own
range, so 12- and 16-bit series get comparable bases) and keeps the smallest stream; ``base=DB``
fixes the target; ``base="none"`` drops the base layer (smallest streams, no preview).
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache
from pathlib import Path

import imagecodecs
import numpy as np
from fedcodec.shared.codecs.codec_checks import library_errors_as_corrupt
from fedcodec.shared.codecs.j2k_codestream import strip_comments
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.learned_lossy.stream_format import KIND_HYBRID, StreamHeader, pack, unpack
from fedcodec.shared.neural.features import feature_count
from fedcodec.shared.neural.geometry import GROUPS
from fedcodec.shared.neural.slice_coder import (
    EntropyModels,
    SliceParams,
    decode_slice,
    encode_slice,
)
from fedcodec.shared.neural.weights import NeuralWeights

MAX_TAU = 15
BASE_CANDIDATES_DB = (16.0, 22.0, 28.0)
"""Base PSNR targets relative to the slice range (dB) tried by ``base=auto`` (measured: richer
bases cost more than they save the refinement, see docs/learned-lossy-codec.md)."""
MIN_BASE_SIDE = 8
"""Smaller images get no base layer (the residual coder alone, its no-reference networks)."""


@lru_cache(maxsize=2)
def load_residual_weights(path: str) -> tuple[NeuralWeights, EntropyModels]:
    if not Path(path).exists():
        raise CorruptDataError(f"hybrid residual weights {path} are missing")
    weights = NeuralWeights.load(Path(path))
    for group in GROUPS:
        for n_refs in (0, 1):
            fan_in = weights.net(group.name, n_refs).weights[0].shape[0]
            if fan_in != feature_count(group, n_refs):
                raise CorruptDataError(
                    f"hybrid residual weights {Path(path).name} were fitted to another neural "
                    "feature layout; refit them with experiments/learned_lossy_hybrid_train.py")
    return weights, EntropyModels(weights)


def base_level_db(image: np.ndarray, bits: int, relative_db: float) -> float:
    """OpenJPEG's PSNR target (peak 2**bits - 1) for ``relative_db`` over the slice's range."""
    span = max(1, int(image.max()) - int(image.min()))
    return relative_db + 20.0 * math.log10(((1 << bits) - 1) / span)


def encode_base(image: np.ndarray, bits: int, relative_db: float) -> bytes:
    """Reversible (5/3) J2K truncated at a PSNR target; OpenJPEG's COM segment dropped."""
    return strip_comments(imagecodecs.jpeg2k_encode(
        image, level=base_level_db(image, bits, relative_db), codecformat="J2K",
        bitspersample=bits, reversible=True, numthreads=1))


def _decode_base_bytes(data: bytes, shape: tuple[int, int], crc: int) -> np.ndarray:
    with library_errors_as_corrupt("neural-lossy hybrid base layer"):
        base = imagecodecs.jpeg2k_decode(data, numthreads=1)
    if base.shape != shape:
        raise CorruptDataError(f"hybrid stream: base layer is {base.shape}, header says {shape}")
    base = base.astype(np.int64)
    if zlib.crc32(base.astype("<u2").tobytes()) != crc:
        raise CorruptDataError("hybrid stream: the base layer decoded differently here than at "
                               "the encoder (CRC mismatch)")
    return base


def encode_with_base(image: np.ndarray, bits: int, tau: int, relative_db: float | None,
                      weights: NeuralWeights, models: EntropyModels) -> tuple[bytes, int, bytes]:
    """(base bytes, base CRC, refinement bytes) for one base choice (None: no base)."""
    refs: list[np.ndarray] = []
    base_bytes, crc = b"", 0
    if relative_db is not None:
        base_bytes = encode_base(image, bits, relative_db)
        base = imagecodecs.jpeg2k_decode(base_bytes, numthreads=1).astype(np.int64)
        crc = zlib.crc32(base.astype("<u2").tobytes())
        refs = [base]
    words, recon = encode_slice(image.astype(np.int64), SliceParams(bits, tau), refs, weights,
                                models)
    if np.abs(recon - image.astype(np.int64)).max() > tau:  # closed loop: cannot happen
        raise AssertionError("hybrid reconstruction error above tau")
    return base_bytes, crc, words.astype("<u4").tobytes()


def encode_hybrid(image: np.ndarray, bits: int, tau: int, base: float | str,
                  weights_path: str) -> bytes:
    weights, models = load_residual_weights(weights_path)
    if min(image.shape) < MIN_BASE_SIDE or base == "none":
        candidates: tuple[float | None, ...] = (None,)
    elif base == "auto":
        candidates = BASE_CANDIDATES_DB
    else:
        candidates = (float(base),)
    best = None
    for relative_db in candidates:
        base_bytes, crc, refinement = encode_with_base(image, bits, tau, relative_db, weights,
                                                        models)
        if best is None or len(base_bytes) + len(refinement) < len(best[0]) + len(best[2]):
            best = (base_bytes, crc, refinement)
    base_bytes, crc, refinement = best
    header = StreamHeader(KIND_HYBRID, tau, bits, image.dtype == np.uint16, image.shape[0],
                          image.shape[1], crc, 0, weights.model_id)
    return pack(header, [base_bytes, refinement])


def _parse(data: bytes, weights: NeuralWeights | None) -> tuple[StreamHeader, list[bytes]]:
    header, sections = unpack(data)
    if header.kind != KIND_HYBRID:
        raise CorruptDataError("not a hybrid neural-lossy stream")
    if weights is not None and header.model_id != weights.model_id:
        raise CorruptDataError(
            f"hybrid stream was written with residual model {header.model_id.hex()}, this build "
            f"has {weights.model_id.hex()}"
        )
    if not 1 <= header.quality <= MAX_TAU or len(sections[1]) % 4:
        raise CorruptDataError("hybrid stream: bad tau or refinement length")
    return header, sections


def decode_base(data: bytes) -> np.ndarray | None:
    """The base layer alone (the progressive preview; needs no residual weights), or None for a
    stream without one (``base=none``, or an image under MIN_BASE_SIDE pixels on a side)."""
    header, sections = _parse(data, None)
    dtype = np.uint16 if header.uint16 else np.uint8
    if not sections[0]:
        return None
    return _decode_base_bytes(sections[0], (header.rows, header.cols), header.lo).astype(dtype)


def decode_hybrid(data: bytes, weights_path: str) -> np.ndarray:
    weights, models = load_residual_weights(weights_path)
    header, sections = _parse(data, weights)
    shape = (header.rows, header.cols)
    refs = [_decode_base_bytes(sections[0], shape, header.lo)] if sections[0] else []
    words = np.frombuffer(sections[1], dtype="<u4").astype(np.uint32)
    if words.size * (1 << 18) < header.rows * header.cols:
        raise CorruptDataError("hybrid stream: refinement too short for the image size")
    recon = decode_slice(words, shape, SliceParams(header.bits, header.quality), refs, weights,
                         models)
    return recon.astype(np.uint16 if header.uint16 else np.uint8)
