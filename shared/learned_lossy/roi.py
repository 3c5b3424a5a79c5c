"""Region-of-interest coding: exact (or within tau) inside a mask, lossy outside, one stream.

It is the hybrid mode (:mod:`.hybrid`) with the refinement restricted to the region. The lossy
base layer (JPEG 2000, reversible 5/3 wavelet, truncated at a PSNR target relative to the
slice's range) covers the whole slice; the learned residual coder then walks the usual
polyphase pyramid with a per-pixel tau (``slice_coder``'s ``tau_map``): pixels inside the ROI are
refined to ``tau`` (0 = lossless), pixels outside keep the base value and cost nothing (or, with
``outside=N``, are refined coarsely to tau N). The ROI pixels still see the base and the
reconstructed outside pixels as context, so the region costs about what the hybrid coder pays
for the same pixels, plus the base for the whole slice.

The mask travels in the stream (a box in 8 bytes, else a zlib-packed bitmap), so a decoder needs
nothing but the stream. The encoder checks every ROI pixel against tau before returning and
stores a CRC of the reconstruction that the decoder checks. Integer arithmetic throughout, so
every machine and thread count decodes the same values. Layout: :mod:`.roi_stream`.
"""

from __future__ import annotations

import zlib

import imagecodecs
import numpy as np

from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.learned_lossy import roi_stream
from fedcodec.shared.learned_lossy.hybrid import (
    MIN_BASE_SIDE,
    _decode_base_bytes,
    encode_base,
    load_residual_weights,
)
from fedcodec.shared.learned_lossy.roi_stream import OUTSIDE_BASE, RoiHeader
from fedcodec.shared.neural.slice_coder import SliceParams, decode_slice, encode_slice

DEFAULT_BASE_DB = 45.0
"""Base-layer PSNR target (dB over the slice's range) = the quality outside the ROI (measured
in docs/learned-lossy-codec.md, "Region of interest")."""
PIXELS_PER_WORD = 1 << 18


def _crc(values: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(values).astype("<u2").tobytes())


def tau_map(mask: np.ndarray, tau: int, outside: int | None) -> np.ndarray:
    """Per-pixel tau for the residual coder: ``tau`` inside, ``outside`` or -1 (keep base)."""
    return np.where(mask, tau, -1 if outside is None else outside).astype(np.int32)


def encode_roi(image: np.ndarray, bits: int, mask: np.ndarray, tau: int, outside: int | None,
               base_db: float, weights_path: str) -> bytes:
    """One ROI stream for ``image`` (2-D uint8/uint16) and its bool ``mask``."""
    weights, models = load_residual_weights(weights_path)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape:
        raise ValueError(f"ROI mask {mask.shape} does not match the image {image.shape}")
    kind, mask_bytes = roi_stream.mask_section(mask)
    if min(image.shape) < MIN_BASE_SIDE and outside is None:
        outside = tau  # too small for a base layer: refine everything
    refs: list[np.ndarray] = []
    base_bytes, base_crc = b"", 0
    if kind != roi_stream.MASK_FULL and outside is None:
        base_bytes = encode_base(image, bits, base_db)
        base = imagecodecs.jpeg2k_decode(base_bytes, numthreads=1).astype(np.int64)
        base_crc = _crc(base)
        refs = [base]
    tmap = tau_map(mask, tau, outside)
    words, recon = encode_slice(image.astype(np.int64), SliceParams(bits, tau), refs, weights,
                                models, tau_map=tmap)
    error = np.abs(recon.astype(np.int64) - image.astype(np.int64))
    if error[mask].max(initial=0) > tau:  # closed loop: cannot happen
        raise AssertionError("ROI reconstruction error above tau")
    header = RoiHeader(tau, OUTSIDE_BASE if outside is None else outside, bits,
                       image.dtype == np.uint16, image.shape[0], image.shape[1], base_crc,
                       _crc(recon), weights.model_id[:4], kind)
    return roi_stream.pack(header, mask_bytes, base_bytes, words.astype("<u4").tobytes())


def decode_mask(data: bytes) -> np.ndarray:
    """The ROI mask a stream carries (bool, the slice's shape), without decoding pixels."""
    header, mask_bytes, _, _ = roi_stream.unpack(data)
    return roi_stream.mask_from_section(header.mask_kind, mask_bytes, (header.rows, header.cols))


def decode_roi(data: bytes, weights_path: str) -> np.ndarray:
    weights, models = load_residual_weights(weights_path)
    header, mask_bytes, base_bytes, refinement = roi_stream.unpack(data)
    if header.model_id != weights.model_id[:4]:
        raise CorruptDataError(f"ROI stream was written with residual model "
                               f"{header.model_id.hex()}, this build has "
                               f"{weights.model_id[:4].hex()}")
    shape = (header.rows, header.cols)
    mask = roi_stream.mask_from_section(header.mask_kind, mask_bytes, shape)
    outside = None if header.outside == OUTSIDE_BASE else header.outside
    tmap = tau_map(mask, header.tau, outside)
    refs = [_decode_base_bytes(base_bytes, shape, header.base_crc)] if base_bytes else []
    if not refs and (tmap < 0).any():
        raise CorruptDataError("ROI stream: pixels outside the ROI but no base layer")
    words = np.frombuffer(refinement, dtype="<u4").astype(np.uint32)
    coded = int((tmap >= 0).sum())
    if coded and words.size * PIXELS_PER_WORD < coded:
        raise CorruptDataError("ROI stream: refinement too short for the region")
    recon = decode_slice(words, shape, SliceParams(header.bits, header.tau), refs, weights,
                         models, tau_map=tmap)
    if _crc(recon) != header.recon_crc:
        raise CorruptDataError("ROI stream: decoded pixels differ from the encoder's (CRC)")
    return recon.astype(np.uint16 if header.uint16 else np.uint8)
