"""Where compressed-domain features come from: one small interface over the neural codec.

The classifiers read the *entropy-decoded* latents ``y_hat`` (C, h, w) of the learned lossy codec
(``neural-lossy``), never pixels: entropy decoding is cheap, the synthesis transform is not.
Everything in :mod:`fedcodec.shared.analysis` talks to a :class:`LatentExtractor`, so the codec
can change (or be swapped for a test double) without touching the classifiers.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

from fedcodec.shared.codecs.base import get_codec, parse_codec_spec
from fedcodec.shared.errors import FedcodecError, UnknownNameError

DEFAULT_LATENT_CODEC = "neural-lossy"
"""The codec's own default rate (no ``quality=``): the operating point the issue asks about."""
LEARNED_LOSSY_MODULE = "fedcodec.shared.learned_lossy.codec"
"""Defines ``extract_latents`` and registers the ``neural-lossy`` codec when imported."""


class LatentExtractor(Protocol):
    """A codec whose bitstreams can be read as latents without running its decoder."""

    spec: str

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        """The codec's bitstream for one 2-D image (what a ``.fcz`` stream holds)."""

    def latents(self, stream: bytes) -> np.ndarray:
        """Entropy-decoded latents (C, h, w) of a bitstream: no synthesis, no pixels."""

    def decode(self, stream: bytes) -> np.ndarray:
        """The full decode to pixels (for the decode-then-classify baseline)."""

    def identity(self) -> dict[str, Any]:
        """What a classifier trained on these latents depends on (spec, weights hash)."""


class CodecLatentExtractor:
    """The ``neural-lossy`` codec of :mod:`fedcodec.shared.learned_lossy` as a latent source."""

    def __init__(self, spec: str = DEFAULT_LATENT_CODEC) -> None:
        name, params = parse_codec_spec(spec)
        self.spec = spec
        try:
            module = importlib.import_module(LEARNED_LOSSY_MODULE)
        except ImportError as exc:
            raise UnknownNameError(
                f"compressed-domain analysis needs the learned lossy codec ({exc})"
            ) from None
        self._codec = get_codec(spec)
        extract = getattr(module, "extract_latents", None)
        if extract is None:
            raise UnknownNameError(f"{LEARNED_LOSSY_MODULE} has no extract_latents()")
        self._extract = extract
        self._name, self._params = name, params

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        return self._codec.encode(image, bits)

    def latents(self, stream: bytes) -> np.ndarray:
        weights = self._params.get("weights")
        y = np.asarray(self._extract(stream, weights=weights) if weights else self._extract(stream))
        if y.ndim != 3:
            raise FedcodecError(f"latent extractor returned shape {y.shape}, expected (C, h, w)")
        return y

    def decode(self, stream: bytes) -> np.ndarray:
        return self._codec.decode(stream)

    def identity(self) -> dict[str, Any]:
        described = self._codec.describe()
        return {
            "spec": self.spec,
            "codec": described.get("name", self._name),
            "model_hash": str(described.get("model_id") or described.get("model_hash") or ""),
        }


def latent_extractor(spec: str = DEFAULT_LATENT_CODEC) -> LatentExtractor:
    """The latent source a spec names (today: the ``neural-lossy`` codec)."""
    name, _ = parse_codec_spec(spec)
    if name != DEFAULT_LATENT_CODEC:
        raise UnknownNameError(
            f"codec {name!r} has no latent interface; compressed-domain analysis needs "
            f"{DEFAULT_LATENT_CODEC!r}"
        )
    return CodecLatentExtractor(spec)
