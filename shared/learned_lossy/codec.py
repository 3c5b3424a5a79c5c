"""The ``neural-lossy`` codec: learned lossy coding (and the retired hybrid mode's decoder).

Specs::

    neural-lossy:quality=Q            lossy, Q = 1 (smallest) .. 8 (best), one trained lambda each
                                      (also ``neural:mode=hyperprior,quality=Q``): the latent
                                      source for compressed-domain analysis and low-rate
                                      previews, not the lossy choice (``neural:mode=lossy``)

The hybrid mode (``neural:mode=hybrid,tau=T``: a JPEG 2000 base layer refined by a learned
residual coder to tau) is retired: it cost more than ``neural:tau=T`` and its preview (the base
alone) had no bound, where ``neural:mode=progressive,layers=B-T`` gives a preview within B at equal
or better PSNR for its bytes and a total within a few percent of single pass
(experiments/hybrid_vs_progressive.py, docs/bounded-error-lossy.md). Its spec is refused with a
one-line error naming the replacement; containers written with it still decode: the container
reader adds ``archived=1`` (:mod:`fedcodec.shared.codecs.renamed_specs`), which builds a decoder
that refuses to encode. :mod:`.hybrid` stays: region-of-interest coding (``neural:mode=roi``) is
built on it.

Latent access for compressed-domain analysis (no synthesis transform is run):
:func:`extract_latents` (from a stream) and :func:`encode_latents` (from an image). See
docs/learned-lossy-codec.md.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from fedcodec.shared.codecs.base import Codec, CodecMode, register_codec, register_mode_route
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.learned_lossy import hybrid
from fedcodec.shared.learned_lossy.stream_format import KIND_HYBRID, MAX_SIDE, unpack
from fedcodec.shared.learned_lossy.weight_files import DEFAULT_WEIGHTS, HYBRID_WEIGHTS

QUALITIES = 8


def _coder() -> ModuleType:
    """The hyperprior's coder (:mod:`.lossy_coder`), imported when first used: it needs torch,
    and every codec module is imported to build the registry, so importing it here made every
    ``fedcodec`` command (and every worker process) load torch, about 1.5-2 s, for nothing."""
    from fedcodec.shared.learned_lossy import lossy_coder

    return lossy_coder


def _check_image(image: np.ndarray, bits: int, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise FedcodecError(f"{name} codec: need a 2-D uint8/uint16 image, got "
                            f"{image.ndim}-D {image.dtype}")
    if not 1 <= bits <= (8 if image.dtype == np.uint8 else 16):
        raise FedcodecError(f"{name} codec: bit depth {bits} does not fit {image.dtype}")
    if image.size == 0 or max(image.shape) > MAX_SIDE:
        raise FedcodecError(f"{name} codec: cannot code a {image.shape} image "
                            f"(sides 1..{MAX_SIDE})")
    if int(image.max()) >> bits:
        raise FedcodecError(f"{name} codec: values exceed {bits} bits")
    return np.ascontiguousarray(image)


def _check_quality(quality: Any) -> int:
    if not isinstance(quality, int) or not 1 <= quality <= QUALITIES:
        raise FedcodecError(f"neural-lossy codec: quality must be an integer 1..{QUALITIES}, "
                            f"not {quality!r}")
    return quality


HYBRID_RETIRED = (
    "the hybrid mode (neural:mode=hybrid, JPEG 2000 base + learned residual) is retired: use "
    "neural:mode=progressive,layers=40-{tau} for a preview within 40 then every pixel within "
    "{tau}, or neural:tau={tau}; containers written with it still decode")


@register_codec
class LearnedLossyCodec(Codec):
    """Mean-scale hyperprior (lossy) or J2K base + learned residual coder (hybrid, bounded)."""

    name = "neural-lossy"

    def __init__(self, quality: int | None = None, mode: str = "lossy", tau: int | None = None,
                 base: float | str = "auto", weights: str | None = None,
                 residual_weights: str | None = None, archived: int = 0) -> None:
        if mode == "hyperprior":  # the name under the ``neural`` family (neural:mode=lossy is
            mode = "lossy"        # the bounded-error coder, shared/neural/bounded_lossy.py)
        if mode not in ("lossy", "hybrid"):
            raise FedcodecError("neural-lossy codec: mode must be lossy (= hyperprior) or hybrid, "
                                f"not {mode!r}")
        if mode == "hybrid" and not archived:
            raise FedcodecError(HYBRID_RETIRED.format(tau=tau if isinstance(tau, int) else "T"))
        self.kind = mode
        self.weights_path = str(weights or DEFAULT_WEIGHTS)
        self.residual_weights_path = str(residual_weights or HYBRID_WEIGHTS)
        if mode == "lossy":
            if tau is not None or base != "auto":
                raise FedcodecError("neural-lossy codec: tau and base belong to mode=hybrid")
            self.quality = _check_quality(4 if quality is None else quality)
            self.tau = None
            self.mode = CodecMode.LOSSY
            self.max_error = None
        else:
            if quality is not None:
                raise FedcodecError("neural-lossy codec: mode=hybrid takes tau, not quality")
            if not isinstance(tau, int) or not 1 <= tau <= hybrid.MAX_TAU:
                raise FedcodecError(f"neural-lossy codec: hybrid needs tau = 1..{hybrid.MAX_TAU}, "
                                    f"not {tau!r}")
            if base not in ("auto", "none") and not (
                    isinstance(base, (int, float)) and 10 <= base <= 120):
                raise FedcodecError("neural-lossy codec: base must be auto, none or a PSNR "
                                    "10..120 dB (relative to the slice range)")
            self.quality = None
            self.tau = tau
            self.base = base
            self.mode = CodecMode.BOUNDED
            self.max_error = tau

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.kind == "lossy":
            out.update(quality=self.quality,
                       model_id=_coder().load_runtime(self.weights_path).weights.model_id.hex())
        else:
            out.update(tau=self.tau, base=self.base,
                       model_id=hybrid.load_residual_weights(
                           self.residual_weights_path)[0].model_id.hex())
        return out

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        if self.kind == "hybrid":
            raise FedcodecError(HYBRID_RETIRED.format(tau=self.tau))
        image = _check_image(image, bits, self.name)
        if self.kind == "lossy":
            coder = _coder()
            return coder.encode_lossy(coder.load_runtime(self.weights_path), image, bits,
                                      self.quality)
        return hybrid.encode_hybrid(image, bits, self.tau, self.base, self.residual_weights_path)

    def decode(self, data: bytes) -> np.ndarray:
        header, _ = unpack(data)
        if header.kind == KIND_HYBRID:
            return hybrid.decode_hybrid(data, self.residual_weights_path)
        coder = _coder()
        return coder.decode_lossy(coder.load_runtime(self.weights_path), data)


def extract_latents(stream: bytes, *, gained: bool = False,
                    weights: str | None = None) -> np.ndarray:
    """Entropy-decode a lossy stream to ``y_hat`` (M, rows/16, cols/16) without synthesis.

    Bit-exact on every machine (integer hyper-synthesis, exact float64 sums). By default the
    latents are multiplied by the quality's inverse gain (the synthesis input), so streams of
    different qualities give comparable features; ``gained=True`` returns the coded grid ``q + mean``.
    Latent positions cover the image padded to a multiple of 64 (edge-replicated).
    """
    coder = _coder()
    runtime = coder.load_runtime(str(weights or DEFAULT_WEIGHTS))
    header, q, mean_q8 = coder.decode_symbols(runtime, stream)
    return coder.latents_from_symbols(runtime, q, mean_q8, header.quality, gained)


def encode_latents(image: np.ndarray, bits: int, quality: int, *, gained: bool = False,
                   weights: str | None = None) -> np.ndarray:
    """The ``y_hat`` that ``neural-lossy:quality=Q`` writes for ``image`` (what
    :func:`extract_latents` returns for that stream), without producing a stream."""
    image = _check_image(image, bits, "neural-lossy")
    coder = _coder()
    runtime = coder.load_runtime(str(weights or DEFAULT_WEIGHTS))
    return coder.encode_latents_array(runtime, image, _check_quality(quality), gained)


def decode_preview(stream: bytes) -> np.ndarray | None:
    """Progressive decoding, first step: the hybrid stream's base layer alone (lossy preview;
    None if the stream has no base layer); a lossy stream decodes fully."""
    header, _ = unpack(stream)
    if header.kind == KIND_HYBRID:
        return hybrid.decode_base(stream)
    coder = _coder()
    return coder.decode_lossy(coder.load_runtime(str(DEFAULT_WEIGHTS)), stream)


__all__ = ["LearnedLossyCodec", "decode_preview", "encode_latents", "extract_latents"]


# ``neural:mode=hyperprior,quality=Q`` and (decode only) ``neural:mode=hybrid`` are this codec.
register_mode_route("neural", "hyperprior", LearnedLossyCodec.name)
register_mode_route("neural", "hybrid", LearnedLossyCodec.name)
