"""``neural:mode=progressive``: a coarse preview, then refinement layers down to a final bound.

Spec::

    neural:mode=progressive                    layers=13-4-0: within 13, then 4, then lossless
    neural:mode=progressive,layers=40-13-4-0   any 2..8 decreasing bounds (0 = lossless)
    neural:mode=progressive,window=0           refinements as ordinary streams (the v1 format)

A volume of N slices becomes ``len(layers) * N`` streams in layer-major order: the N streams of
layer 1 (ordinary ``neural`` streams at the first bound, slice *i* conditioned on slice *i-1* when
that pays, like ``neural:tau=13``), then the N streams of layer 2, and so on.

A refinement stream (magic 0xA7, or 0xA9 with the encoder's extra choices, :mod:`.coarse_window`,
:func:`.adaptive_encoder.encode_refinement_adaptive`) knows that every pixel lies within the
previous layer's bound ``tc`` of that layer's reconstruction ``c`` (its first reference, N
streams back), so it codes only which bin of ``2 tau + 1`` levels inside ``[c - tc, c + tc]``
holds the pixel, with the model's distribution restricted to the window and renormalised
(integer masses, so every machine builds the same probabilities); a one-bin window costs
nothing. With nested bounds (``2 tc + 1`` a multiple of ``2 tau + 1``: 13-4-1-0, 40-13-4-0, the
default 13-4-0) the fine bins partition each coarse bin exactly; other lists hold every bound too
and only waste some rate. The network sees the previous slice of the refinement's own layer (a
second reference, when it pays), not the coarse slice, which made it overconfident.
Measured: 1.006-1.118x single-pass bytes at the final bound over the plans and sources of
experiments/progressive_layers.py (default 13-4-0: 1.016-1.092x the product's single pass,
1.016-1.050x the learned coder's alone, which is the coder the layers use), against 1.25-1.47x
for the v1 refinement at 16-4-0 (docs/bounded-error-lossy.md). Networks trained to use the
coarse slice as a reference did not help (experiments/refinement_models.py).

The references are in each stream's header, so :meth:`NeuralCodec.decode_volume` decodes any
whole-layer prefix in order with no extra logic, and containers written before 0xA7 (every
refinement an ordinary stream against the coarse slice) decode as before. A viewer or a slow link
reads the first ``k * N`` streams and stops: every pixel is then within layer *k*'s bound
(:meth:`ProgressiveCodec.decode_layers`, ``fedcodec decompress --layer K``). Each layer's streams
record their tau, so the bound of a partial decode is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedcodec.shared.codecs.base import CodecMode, register_codec, register_mode_route
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.neural.bounded_lossy import recorded_bound
from fedcodec.shared.neural.codec import NeuralCodec
from fedcodec.shared.neural.stream_format import COPY_MAGIC
from fedcodec.shared.neural.volume_context import reference_offsets

MAX_LAYERS = 8
DEFAULT_LAYERS = "13-4-0"
"""Nested (27 = 3 x 9 levels, 9 = 9 x 1); measured 1.016-1.092x single pass, the cheapest
3-layer plan measured on each of the three sources of experiments/progressive_layers.py (tied
with 16-4-0 on enhanced MR)."""


def parse_layers(text: Any) -> tuple[int, ...]:
    """``13-4-0`` -> (13, 4, 0): strictly decreasing non-negative bounds, 2..MAX_LAYERS."""
    try:
        layers = tuple(int(part) for part in str(text).split("-"))
    except ValueError:
        layers = ()
    if not 2 <= len(layers) <= MAX_LAYERS or any(t < 0 for t in layers) or any(
            a <= b for a, b in zip(layers, layers[1:])):
        raise FedcodecError(f"neural progressive: layers must be 2..{MAX_LAYERS} decreasing "
                            f"bounds like 13-4-0 (0 = lossless), not {text!r}")
    return layers


@register_codec
class ProgressiveCodec(NeuralCodec):
    """Layered bounded-error coding: the first layer is a preview, the last the final bound."""

    name = "neural-progressive"

    def __init__(self, mode: str = "progressive", layers: Any = DEFAULT_LAYERS,
                 period: int | None = None, interslice: int = 1,
                 weights: str | None = None, window: int = 1) -> None:
        if mode != "progressive":
            raise FedcodecError(
                f"neural-progressive codec: mode must be progressive, not {mode!r}")
        if window not in (0, 1):
            raise FedcodecError("neural progressive: window must be 0 or 1")
        self.window = bool(window)
        self.layers = parse_layers(layers)
        super().__init__(tau=self.layers[-1], period=period, interslice=interslice,
                         weights=weights)
        self.mode = CodecMode.BOUNDED if self.layers[-1] else CodecMode.LOSSLESS
        self.max_error = self.layers[-1]

    @property
    def layer_count(self) -> int:
        return len(self.layers)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(layers="-".join(map(str, self.layers)), window=int(self.window))
        return out

    def guaranteed_error(self, stream: bytes) -> int | None:
        return recorded_bound(stream)

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        raise FedcodecError("neural-progressive codes volumes into several streams per slice: "
                            "use encode_volume")

    def decode(self, data: bytes) -> np.ndarray:
        raise FedcodecError("neural-progressive decodes volumes: use decode_volume")

    def encode_volume(self, volume: np.ndarray, bits: int) -> list[bytes]:
        volume = np.asarray(volume)
        if volume.ndim != 3 or volume.shape[0] == 0:
            raise FedcodecError(f"neural progressive: need a (slices, rows, cols) volume, got "
                                f"{volume.shape}")
        for image in volume[:1]:
            self._check_image(image, bits)
        if int(volume.max()) >> bits:
            raise FedcodecError(f"neural codec: values exceed {bits} bits")
        if self.layers[0] >= 1 << bits:
            raise FedcodecError(f"neural progressive: bound {self.layers[0]} does not fit "
                                f"{bits} bits")
        n = volume.shape[0]
        period = self.volume_period(volume, bits) if self.interslice else 1
        streams: list[bytes] = []
        recons: list[np.ndarray] = []  # layer-major, as the decoder will hold them
        for layer, tau in enumerate(self.layers):
            for i, image in enumerate(volume):
                if layer == 0:
                    offsets = reference_offsets(i, period, self.interslice)
                elif self.window:
                    # the coarse slice (window) and, for the network, this layer's previous slice
                    offsets = (n, 1) if i and self.interslice else (n,)
                else:
                    offsets = (n,)  # measured: cheaper than adding the previous slice (n, 1)
                coarse = self.layers[layer - 1] if layer and self.window else 0
                data, recon = self._encode_checked(np.ascontiguousarray(image), bits, recons,
                                                   offsets, tau, coarse)
                streams.append(data)
                recons.append(recon)
        return streams

    def _encode_checked(self, image: np.ndarray, bits: int, recons: list[np.ndarray],
                        offsets: tuple[int, ...], tau: int, coarse: int
                        ) -> tuple[bytes, np.ndarray]:
        """One slice of one layer; with ``interslice=1`` (default) also coded without the
        previous slice of its layer (the coarse slice stays: it is the window), keeping the
        smaller stream, as single-pass coding does (measured: layer 1 always with references cost
        6% more on enhanced MR at tau 4). ``window=0`` (the v1 refinement) never checks."""
        data, recon = self._encode_one(image, bits, [recons[-off] for off in offsets], offsets,
                                       tau, window_bound=coarse)
        fewer = offsets[:1] if coarse else ()
        if (self.window and self.check_references and fewer != offsets
                and data[0] != COPY_MAGIC):
            alone, alone_recon = self._encode_one(image, bits, [recons[-off] for off in fewer],
                                                  fewer, tau, window_bound=coarse)
            if len(alone) < len(data):
                return alone, alone_recon
        return data, recon

    def _slices(self, streams: Sequence[bytes]) -> int:
        if not streams or len(streams) % self.layer_count:
            raise CorruptDataError(f"neural progressive: {len(streams)} streams is not "
                                   f"{self.layer_count} layers of whole volumes")
        return len(streams) // self.layer_count

    def layer_streams(self, streams: Sequence[bytes], layer: int) -> list[bytes]:
        """The streams a decode up to ``layer`` (1-based) needs: the first ``layer * N``."""
        if not 1 <= layer <= self.layer_count:
            raise FedcodecError(f"layer must be 1..{self.layer_count} "
                                f"(bounds {'-'.join(map(str, self.layers))}), not {layer}")
        return list(streams[: layer * self._slices(streams)])

    def decode_layers(self, streams: Sequence[bytes], layer: int, *,
                      partial: bool = False) -> np.ndarray:
        """The volume as of ``layer`` (1-based): every pixel within ``layers[layer - 1]``.
        ``streams``: all layers, or (``partial``) only the first ``layer * N`` streams."""
        if partial:
            if not 1 <= layer <= self.layer_count or not streams or len(streams) % layer:
                raise CorruptDataError(f"neural progressive: {len(streams)} streams are not "
                                       f"{layer} whole layers")
            needed = list(streams)
        else:
            needed = self.layer_streams(streams, layer)
        return super().decode_volume(needed)[-(len(needed) // layer):]

    def decode_volume(self, streams: Sequence[bytes]) -> np.ndarray:
        return self.decode_layers(streams, self.layer_count)


register_mode_route("neural", "progressive", ProgressiveCodec.name)
