"""The never-worse safety net: a slice goes out as a classical stream when that is smaller.

The ``neural`` codec (``fallback=1``, the default) codes each slice with the learned coder, then
with the classical candidates below, and keeps the smallest stream. A classical stream is
stored as the codec's own bare codestream, with no byte added: it is recognised by its
signature (JPEG XL ``FF 0A`` or its ISOBMFF box, JPEG-LS ``FF D8``, JPEG 2000 / HTJ2K
``FF 4F``), which never starts a neural stream (magic ``0xA1``-``0xA3``). So per slice the
product is never larger than the best candidate, and decoding needs nothing but the stream.

Candidates: lossless, JPEG XL effort 7, JPEG-LS, JPEG 2000 and HTJ2K (``fallback=2`` adds
JPEG XL effort 9, 5x slower to encode than effort 7); near-lossless, JPEG-LS with the same tau
(its reconstruction is within tau by the standard; checked here all the same). The chosen
stream is decoded once by the encoder: later slices use that decoded image as their reference,
exactly as the decoder will.
"""

from __future__ import annotations

import numpy as np

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError

LOSSLESS_CANDIDATES = ("jxl", "jpegls", "j2k", "htj2k")
THOROUGH_EXTRA = ("jxl:effort=9",)
_SIGNATURES = ((b"\xff\x0a", "jxl"), (b"\x00\x00\x00\x0cJXL ", "jxl"), (b"\xff\xd8", "jpegls"),
               (b"\xff\x4f", "j2k"))
"""Stream prefix -> the registry codec that decodes it (``j2k`` also decodes HTJ2K)."""


def candidates(tau: int, level: int) -> tuple[str, ...]:
    """Codec specs tried for a slice at ``tau`` (level 1: fast set, 2: with JPEG XL effort 9)."""
    if tau:
        return (f"jpegls:tau={tau}",)
    return LOSSLESS_CANDIDATES + (THOROUGH_EXTRA if level >= 2 else ())


def is_classical(data: bytes) -> bool:
    """True when ``data`` is a fallback (classical) stream rather than a neural one."""
    return any(bytes(data[: len(prefix)]) == prefix for prefix, _ in _SIGNATURES)


def decode_classical(data: bytes) -> np.ndarray:
    """Decode a fallback stream with the codec its signature names."""
    for prefix, spec in _SIGNATURES:
        if bytes(data[: len(prefix)]) == prefix:
            return get_codec(spec).decode(bytes(data))
    raise CorruptDataError("neural codec: not a classical fallback stream")


def smaller_classical(image: np.ndarray, bits: int, tau: int, level: int, limit: int
                      ) -> tuple[bytes, np.ndarray] | None:
    """The smallest candidate stream shorter than ``limit`` bytes, with its decoded image as
    int32 (the reference later slices see), or None when the learned stream stays smaller.

    A candidate that cannot code the image (a codec's own limits) is skipped; the winner is
    decoded and checked (dtype, shape, error <= tau) before it is used.
    """
    best: bytes | None = None
    for spec in candidates(tau, level):
        try:
            data = get_codec(spec).encode(image, bits)
        except FedcodecError:
            continue
        if len(data) < limit and (best is None or len(data) < len(best)):
            best = data
    if best is None:
        return None
    decoded = decode_classical(best)
    if (decoded.shape != image.shape or decoded.dtype != image.dtype
            or np.abs(decoded.astype(np.int64) - image).max() > tau):
        return None  # never trust a candidate that does not reproduce the slice as promised
    return best, decoded.astype(np.int32)
