"""JPEG-LS (ITU-T T.87): lossless, or near-lossless with every pixel within tau.

Output is the bare JPEG-LS codestream (SOI ... EOI), ready for DICOM encapsulation (transfer
syntaxes 1.2.840.10008.1.2.4.80 lossless / .81 near-lossless).

Why two libraries: imagecodecs' ``jpegls_encode`` sets the sample precision P from the dtype
(16 for uint16) and writes a SPIFF header. For 12-bit MR that is wrong twice over. DICOM expects
P = Bits Stored. And MAXVAL = 65535 instead of 4095 changes RANGE, hence each of the 365
contexts' initial A (T.87 A.2.1: max(2, (RANGE + 32) // 64), 1024 instead of 64), the escape
length qbpp and LIMIT; the coder starts 16x too pessimistic, which small slices pay for (an
80x80 12-bit DTI slice has ~17 samples per context). Measured on the 1807 slices of
../shared/data/dicom: 4.56 -> 4.35 bpp pooled, Philips 80x80 DTI 5.07 -> 3.83 bpp. (The default
thresholds T1..T3 are not the cause: they stop growing at MAXVAL 4095.) pyjpegls (also CharLS)
takes the real bit depth and writes no SPIFF header, so it encodes; imagecodecs (CharLS 2.4.3)
decodes.

pyjpegls' public ``encode_buffer`` sizes its output buffer as twice the input, too small for the
~28-byte headers of 1x1 or 1x2 images, so we call the extension's ``_encode`` directly with
zero padding after the pixels (CharLS reads rows x stride bytes and ignores the rest). That is a
private function: pyjpegls is pinned (1.5.1) and the tests cover the tiny sizes.
"""

from __future__ import annotations

from typing import Any

import _CharLS  # pyjpegls' compiled extension (CharLS)
import imagecodecs
import jpeg_ls
import numpy as np

from fedcodec.shared.codecs.base import Codec, CodecMode, register_codec
from fedcodec.shared.codecs.codec_checks import (
    as_bytes,
    check_decoded,
    check_image,
    check_number,
    library_errors_as_corrupt,
    require_end_marker,
)
from fedcodec.shared.errors import FedcodecError

_OUTPUT_HEADROOM = 1024
"""Zero bytes appended to the input so the encoder's output buffer (2x input) fits headers."""

_MAX_SIDE = 65535
"""Largest width/height the SOF55 segment holds without an LSE extension (pyjpegls' limit)."""


@register_codec
class JpegLsCodec(Codec):
    """JPEG-LS via CharLS. ``tau=0`` (default) is lossless; ``tau=N`` bounds every error by N.

    Single-threaded by construction (CharLS has no threading).
    """

    name = "jpegls"

    def __init__(self, tau: int = 0) -> None:
        super().__init__()
        self.tau = int(check_number(self.name, "tau", tau, 0, 255, integer=True))
        self.mode = CodecMode.LOSSLESS if self.tau == 0 else CodecMode.BOUNDED
        self.max_error = self.tau

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        image = check_image(image, bits, self.name)
        rows, cols = image.shape
        if rows > _MAX_SIDE or cols > _MAX_SIDE:
            raise FedcodecError(f"jpegls: image {rows}x{cols} exceeds {_MAX_SIDE} per side")
        precision = max(int(bits), 2)  # T.87 allows P = 2..16; 1-bit data is coded as 2-bit
        limit = min(255, ((1 << precision) - 1) // 2)
        if self.tau > limit:
            raise FedcodecError(
                f"jpegls: tau={self.tau} exceeds {limit}, the most {bits}-bit data allow"
            )
        raw = image.tobytes() + bytes(_OUTPUT_HEADROOM)
        try:
            stream = _CharLS._encode(raw, self.tau, 0, rows, cols, 1, precision)
        except RuntimeError as exc:  # CharLS rejected parameters we validated: a bug, keep it
            raise RuntimeError(f"jpegls encoder failed on {rows}x{cols}/{bits}: {exc}") from exc
        return bytes(stream)

    def decode(self, data: bytes) -> np.ndarray:
        data = as_bytes(data, self.name)
        require_end_marker(data, self.name)
        with library_errors_as_corrupt(self.name):
            image = imagecodecs.jpegls_decode(data)
        return check_decoded(image, self.name)

    @property
    def spec(self) -> str:
        return self.name if self.tau == 0 else f"{self.name}:tau={self.tau}"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "spec": self.spec,
            "params": {"tau": self.tau},
            "library": f"pyjpegls {jpeg_ls.__version__} (encode),"
            f" {imagecodecs.jpegls_version()} (decode)",
        }
