"""JPEG 2000 Part 1 (OpenJPEG): reversible 5/3 by default, or irreversible 9/7 at a ratio.

Output is the bare J2K codestream (SOC ... EOC, no JP2 boxes, no COM segment), ready for DICOM
encapsulation (1.2.840.10008.1.2.4.90 lossless / .91 lossy). The SIZ precision is the real bit
depth, so a 12-bit image is a 12-bit codestream (what DICOM readers check against Bits Stored).

``ratio=R`` means: output bytes ~= pixels * bits / 8 / R, i.e. relative to the ``bits``-deep raw
data, not the 16-bit container. imagecodecs' ``level`` for JPEG 2000 is *not* a ratio: it is a
target PSNR in dB (OpenJPEG fixed-quality mode, ``tcp_distoratio``), and it has no fixed-rate
mode. So lossy encoding uses pylibjpeg-openjpeg, whose ``compression_ratios`` is OpenJPEG's own
rate allocation (``tcp_rates``, defined against the component precision, i.e. ``bits``). That
encoder always uses 6 resolution levels and so refuses images under 32 pixels on a side; for
those we bisect imagecodecs' PSNR target for the best stream within the same byte budget.

OpenJPEG's allocator stops at coding-pass boundaries and misses the size it is asked for by up to
~7%, so the requested ratio is re-aimed by the observed miss (at most 3 more encodes, stopping
within 1%) and the stream closest to the target is kept: on MR slices from 64x64 to 256x256 at
ratios 4..64 the miss was within 2.6%. Two cases cannot be met and are not errors: a ratio below
what 9/7 coding of the image reaches (the stream is then as large as the allocator makes it),
and a budget smaller than the ~70-byte headers.

Both encoders run single-threaded: imagecodecs with ``numthreads=1``; pylibjpeg-openjpeg never
calls ``opj_codec_set_threads`` (OpenJPEG then uses one thread unless OPJ_NUM_THREADS is set).
"""

from __future__ import annotations

import math
from typing import Any

import imagecodecs
import numpy as np
import openjpeg

from fedcodec.shared.codecs.base import Codec, CodecMode, register_codec
from fedcodec.shared.codecs.codec_checks import (
    as_bytes,
    check_decoded,
    check_image,
    library_errors_as_corrupt,
    optional_number,
)
from fedcodec.shared.codecs.j2k_codestream import check_structure, strip_comments
from fedcodec.shared.codecs.rate_search import encode_within_budget

_MIN_SIDE_FOR_RATE_ALLOCATION = 32
"""pylibjpeg-openjpeg's fixed 6 resolutions need 2**5 pixels on each side."""

_RATE_ATTEMPTS = 4
"""Encodes spent aiming OpenJPEG's rate allocation at the requested size (usually 1 to 3)."""

_RATE_TOLERANCE = 0.01
"""Stop re-aiming once the stream is within 1% of pixels * bits / 8 / ratio."""

_PSNR_SEARCH_RANGE = (1.0, 200.0)
"""Target PSNR (dB) searched for small images; 200 dB is beyond any 16-bit image."""

_GREYSCALE = 2
"""pylibjpeg-openjpeg's photometric code for greyscale (no multi-component transform)."""


def _encode_at_ratio(image: np.ndarray, bits: int, ratio: float) -> bytes:
    """OpenJPEG's rate allocation, re-aimed at pixels * bits / 8 / ratio bytes.

    OpenJPEG stops at coding-pass boundaries and so lands up to ~7% under (or a few % over, on
    small images) the size it was asked for. Scaling the requested ratio by the observed miss
    usually converges in one or two more encodes; the stream closest to the target is kept.
    """
    target = image.size * bits / 8 / ratio
    requested, best = ratio, b""
    for _ in range(_RATE_ATTEMPTS):
        stream = strip_comments(
            openjpeg.encode(
                image,
                bits_stored=bits,
                photometric_interpretation=_GREYSCALE,
                compression_ratios=[requested],
                codec_format=0,
            )
        )
        if not best or abs(math.log(len(stream) / target)) < abs(math.log(len(best) / target)):
            best = stream
        miss = len(stream) / target
        if abs(miss - 1.0) <= _RATE_TOLERANCE or requested * miss < 1.0:
            break
        requested *= miss
    return best


@register_codec
class Jpeg2000Codec(Codec):
    """JPEG 2000 codestream. No parameters: lossless. ``ratio=R`` (> 1): lossy at ratio R."""

    name = "j2k"

    def __init__(self, ratio: float | None = None) -> None:
        super().__init__()
        self.ratio = optional_number(self.name, "ratio", ratio, 1.0, 10000.0)
        self.mode = CodecMode.LOSSLESS if self.ratio is None else CodecMode.LOSSY
        self.max_error = 0 if self.ratio is None else None

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        image = check_image(image, bits, self.name)
        if self.ratio is None:
            return strip_comments(
                imagecodecs.jpeg2k_encode(
                    image, codecformat="J2K", bitspersample=int(bits), reversible=True, numthreads=1
                )
            )
        if min(image.shape) >= _MIN_SIDE_FOR_RATE_ALLOCATION:
            return _encode_at_ratio(image, int(bits), float(self.ratio))
        budget = int(image.size * bits / 8 / self.ratio)
        low, high = _PSNR_SEARCH_RANGE

        def encode_at(t: float) -> bytes:
            return strip_comments(
                imagecodecs.jpeg2k_encode(
                    image,
                    level=low + t * (high - low),
                    codecformat="J2K",
                    bitspersample=int(bits),
                    reversible=False,
                    numthreads=1,
                )
            )

        return encode_within_budget(encode_at, budget)

    def decode(self, data: bytes) -> np.ndarray:
        data = as_bytes(data, self.name)
        check_structure(data, self.name)
        with library_errors_as_corrupt(self.name):
            image = imagecodecs.jpeg2k_decode(data, numthreads=1)
        return check_decoded(image, self.name)

    @property
    def spec(self) -> str:
        return self.name if self.ratio is None else f"{self.name}:ratio={self.ratio:g}"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "spec": self.spec,
            "params": {"ratio": self.ratio},
            "library": f"{imagecodecs.jpeg2k_version()} via imagecodecs {imagecodecs.__version__}"
            f" and pylibjpeg-openjpeg {openjpeg.__version__}",
        }
