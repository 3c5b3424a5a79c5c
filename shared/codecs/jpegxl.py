"""JPEG XL (libjxl): lossless modular by default, or VarDCT at a butteraugli distance.

Output is the bare JPEG XL codestream (``FF 0A``), whose header records the real bit depth
(``bitspersample=bits``), so 12-bit data are coded as 12-bit samples. Above 12 bits libjxl needs
codestream level 10, which it can only signal in a ``jxll`` box, so 13..16-bit streams come in
the ISOBMFF container (about 40 bytes more); ``decode`` accepts both.
Encoding and decoding use one thread (``numthreads=1``) so timings compare with the other
single-threaded codecs; the encoder is deterministic at any fixed effort.

Parameters: ``effort`` 1..10 (default 7, libjxl's default; the issue's anchor uses it);
``distance=D`` (butteraugli distance, 1.0 ~ visually lossless) or ``quality=Q`` (libjxl's
quality scale, mapped to a distance by libjxl; 90 == distance 1.0) selects lossy mode.
"""

from __future__ import annotations

from typing import Any

import imagecodecs
import numpy as np

from fedcodec.shared.codecs.base import Codec, CodecMode, register_codec
from fedcodec.shared.codecs.codec_checks import (
    as_bytes,
    check_decoded,
    check_image,
    check_number,
    library_errors_as_corrupt,
    optional_number,
)
from fedcodec.shared.errors import CorruptDataError, FedcodecError

_SIGNATURES = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")
"""Bare codestream, and the ISOBMFF container (used for level-10, i.e. > 12-bit, streams)."""


@register_codec
class JpegXlCodec(Codec):
    """JPEG XL codestream: lossless unless ``distance`` or ``quality`` is given."""

    name = "jxl"

    def __init__(
        self, effort: int = 7, distance: float | None = None, quality: float | None = None
    ) -> None:
        super().__init__()
        if distance is not None and quality is not None:
            raise FedcodecError("codec 'jxl': give distance or quality, not both")
        self.effort = int(check_number(self.name, "effort", effort, 1, 10, integer=True))
        self.distance = optional_number(self.name, "distance", distance, 0.01, 25.0)
        self.quality = optional_number(self.name, "quality", quality, 0.0, 99.99)
        lossless = self.distance is None and self.quality is None
        self.mode = CodecMode.LOSSLESS if lossless else CodecMode.LOSSY
        self.max_error = 0 if lossless else None

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        image = check_image(image, bits, self.name)
        options: dict[str, Any] = {
            "effort": self.effort,
            "bitspersample": int(bits),
            "usecontainer": False,
            "numthreads": 1,
        }
        if self.mode is CodecMode.LOSSLESS:
            options["lossless"] = True
        elif self.distance is not None:
            options.update(lossless=False, distance=self.distance)
        else:
            options.update(lossless=False, level=self.quality)
        return bytes(imagecodecs.jpegxl_encode(image, **options))

    def decode(self, data: bytes) -> np.ndarray:
        data = as_bytes(data, self.name)
        if not data.startswith(_SIGNATURES):
            raise CorruptDataError("jxl stream does not start with a JPEG XL signature")
        with library_errors_as_corrupt(self.name):
            image = imagecodecs.jpegxl_decode(data, numthreads=1)
        return check_decoded(image, self.name)

    @property
    def spec(self) -> str:
        parts = [] if self.effort == 7 else [f"effort={self.effort}"]
        if self.distance is not None:
            parts.append(f"distance={self.distance:g}")
        if self.quality is not None:
            parts.append(f"quality={self.quality:g}")
        return self.name + (":" + ",".join(parts) if parts else "")

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "spec": self.spec,
            "params": {"effort": self.effort, "distance": self.distance, "quality": self.quality},
            "library": f"{imagecodecs.jpegxl_version()} via imagecodecs {imagecodecs.__version__}",
        }
