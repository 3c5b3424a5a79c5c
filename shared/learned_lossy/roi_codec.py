"""The ``neural-roi`` codec (also ``neural:mode=roi``): ROI within tau, lossy elsewhere.

Specs::

    neural:mode=roi,tau=0,box=40:60:200:180        lossless in columns 40..199, rows 60..179
    neural:mode=roi,tau=0,box=40:60:200:180:10:20  ... only on slices 10..19 (others all lossy)
    neural:mode=roi,tau=2,centre=0.15              within 2 in a centred box of 15 % of the area
    neural:mode=roi,tau=0,base=45,outside=3        outside refined to tau 3 over a 45 dB base

``base`` is the base layer's PSNR target in dB over the slice's range (default
``roi.DEFAULT_BASE_DB``): the quality outside the region unless ``outside=N`` refines it to tau N.

How the region reaches the codec. The :class:`~fedcodec.shared.codecs.base.Codec` contract stays
``encode(image, bits)``: the region is part of the codec's configuration. A spec can carry a box
or a centred box; a mask (or a box from the command line) is bound with :meth:`RoiCodec.with_roi`,
which returns a new codec configured with that region (the original is untouched). Decoding needs
no region: every stream carries its own mask. ``mode`` is LOSSY (the outside is), and
:attr:`RoiCodec.roi_max_error` is the bound inside the region; ``describe()`` records the region
(kind, box or mask shape, SHA-256) for the container header.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedcodec.shared.codecs.base import Codec, CodecMode, register_codec, register_mode_route
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.learned_lossy import roi, roi_stream
from fedcodec.shared.learned_lossy.codec import _check_image
from fedcodec.shared.learned_lossy.hybrid import load_residual_weights
from fedcodec.shared.learned_lossy.roi_mask import RoiSpec, centred, parse_box
from fedcodec.shared.learned_lossy.weight_files import HYBRID_WEIGHTS


@register_codec
class RoiCodec(Codec):
    """Hybrid base + learned refinement restricted to a region of interest."""

    name = "neural-roi"
    mode = CodecMode.LOSSY
    max_error = None

    def __init__(self, mode: str = "roi", tau: int = 0, outside: int | str = "base",
                 base: float = roi.DEFAULT_BASE_DB, box: str | None = None,
                 centre: float | None = None, residual_weights: str | None = None) -> None:
        if mode != "roi":
            raise FedcodecError(f"neural-roi codec: mode must be roi, not {mode!r}")
        if isinstance(tau, bool) or not isinstance(tau, int) or not 0 <= tau <= roi_stream.MAX_TAU:
            raise FedcodecError(f"neural-roi codec: tau must be 0..{roi_stream.MAX_TAU} "
                                f"(0 = lossless inside the ROI), not {tau!r}")
        if outside != "base" and (isinstance(outside, bool) or not isinstance(outside, int)
                                  or not tau <= outside <= roi_stream.MAX_TAU):
            raise FedcodecError(f"neural-roi codec: outside must be base or a tau "
                                f"{tau}..{roi_stream.MAX_TAU}, not {outside!r}")
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not 10 <= base <= 120:
            raise FedcodecError("neural-roi codec: base must be a PSNR 10..120 dB (relative to "
                                "the slice range)")
        if box is not None and centre is not None:
            raise FedcodecError("neural-roi codec: give box or centre, not both")
        self.tau = tau
        self.outside = None if outside == "base" else int(outside)
        self.base = float(base)
        self.residual_weights_path = str(residual_weights or HYBRID_WEIGHTS)
        self.roi: RoiSpec | None = None
        if box is not None:
            self.roi = parse_box(str(box), sep=":")
        elif centre is not None:
            self.roi = centred(centre)

    @property
    def roi_max_error(self) -> int:
        """The bound every pixel inside the region meets (0 = exact)."""
        return self.tau

    def with_roi(self, region: RoiSpec) -> RoiCodec:
        """This codec configured with ``region`` (a new object; ``self`` is unchanged)."""
        bound = object.__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound.roi = region
        return bound

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(roi_tau=self.tau, outside="base" if self.outside is None else self.outside,
                   base=self.base,
                   model_id=load_residual_weights(self.residual_weights_path)[0].model_id.hex())
        if self.roi is not None:
            out["roi"] = self.roi.describe()
        return out

    def _region(self) -> RoiSpec:
        if self.roi is None:
            raise FedcodecError("neural-roi codec: no region of interest; give box=x0:y0:x1:y1 "
                                "or centre=F in the spec, or bind one with with_roi()")
        return self.roi

    def _encode_slice(self, image: np.ndarray, bits: int, mask: np.ndarray) -> bytes:
        image = _check_image(image, bits, self.name)
        return roi.encode_roi(image, bits, mask, self.tau, self.outside, self.base,
                              self.residual_weights_path)

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        region = self._region()
        image = np.asarray(image)
        if region.kind == "mask" and region.mask is not None and region.mask.ndim == 3:
            raise FedcodecError("neural-roi codec: a (slices, rows, cols) mask needs "
                                "encode_volume")
        if image.ndim != 2:
            raise FedcodecError(f"neural-roi codec: need a 2-D image, got {image.ndim}-D")
        return self._encode_slice(image, bits, region.slice_mask(0, image.shape))

    def encode_volume(self, volume: np.ndarray, bits: int) -> list[bytes]:
        region = self._region()
        volume = np.asarray(volume)
        if volume.ndim != 3:
            raise FedcodecError(f"neural-roi codec: need a (slices, rows, cols) volume, got "
                                f"{volume.shape}")
        region.check_volume(volume.shape)
        return [self._encode_slice(np.ascontiguousarray(s), bits,
                                   region.slice_mask(i, s.shape))
                for i, s in enumerate(volume)]

    def decode(self, data: bytes) -> np.ndarray:
        return roi.decode_roi(data, self.residual_weights_path)

    def decode_volume(self, streams: Sequence[bytes]) -> np.ndarray:
        return np.stack([self.decode(s) for s in streams])


def roi_masks(streams: Sequence[bytes]) -> np.ndarray:
    """The ROI mask of every stream (slices, rows, cols), e.g. to score a decoded volume."""
    return np.stack([roi.decode_mask(s) for s in streams])


register_mode_route("neural", "roi", RoiCodec.name)
