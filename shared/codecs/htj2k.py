"""High-Throughput JPEG 2000 (Part 15, OpenJPH): reversible by default, or quantised 9/7.

Output is the bare HTJ2K codestream (SOC ... EOC, no library COM segment), for DICOM
1.2.840.10008.1.2.4.201 (lossless) / .203 (lossy).

Limits of the only HTJ2K encoder we have (imagecodecs' OpenJPH wrapper), stated so nobody is
surprised downstream:

* No bit-depth parameter: the SIZ precision is the container's, 16 for uint16 and 8 for uint8.
  Lossless coding barely pays for it (the extra bit planes are empty and coded as "missing
  MSBs"), but a DICOM reader will warn that precision 16 != Bits Stored 12. A lossy decode can
  ring above ``2**bits - 1`` (5799 for a 12-bit step edge), so lossy streams carry a 10-byte COM
  note with the real bit depth and ``decode`` clips to it (see ``j2k_codestream``); another
  decoder of the same stream must clip to Bits Stored itself.
* No rate control: lossy mode takes a quantisation step (``qstep``, relative to the container's
  nominal range, so 1/65536 is one 16-bit grey level). ``ratio=R`` is offered by bisecting the
  step for the best stream within pixels * bits / 8 / R bytes (about 15 encodes; OpenJPH is fast).
* OpenJPH is single-threaded here (the wrapper exposes no thread count).
"""

from __future__ import annotations

import math
from typing import Any

import imagecodecs
import numpy as np

from fedcodec.shared.codecs.base import Codec, CodecMode, register_codec
from fedcodec.shared.codecs.codec_checks import (
    as_bytes,
    check_decoded,
    check_image,
    library_errors_as_corrupt,
    optional_number,
)
from fedcodec.shared.codecs.j2k_codestream import (
    add_bit_depth_note,
    check_structure,
    read_bit_depth_note,
    strip_comments,
)
from fedcodec.shared.codecs.rate_search import encode_within_budget
from fedcodec.shared.errors import CorruptDataError, FedcodecError

_FINEST_QSTEP = 2e-5
"""imagecodecs treats steps below 1e-5 (as float32) as 'reversible'; stay clear of that edge."""


def _lossy(image: np.ndarray, qstep: float, bits: int) -> bytes:
    """Irreversible 9/7 at ``qstep``, library comment dropped, our bit-depth note added."""
    stream = strip_comments(imagecodecs.htj2k_encode(image, qstep, reversible=False))
    return add_bit_depth_note(stream, int(bits))


@register_codec
class HtJ2kCodec(Codec):
    """HTJ2K codestream. No parameters: lossless. ``qstep=Q`` or ``ratio=R``: lossy."""

    name = "htj2k"

    def __init__(self, qstep: float | None = None, ratio: float | None = None) -> None:
        super().__init__()
        if qstep is not None and ratio is not None:
            raise FedcodecError("codec 'htj2k': give qstep or ratio, not both")
        self.qstep = optional_number(self.name, "qstep", qstep, _FINEST_QSTEP, 1.0)
        self.ratio = optional_number(self.name, "ratio", ratio, 1.0, 10000.0)
        lossless = self.qstep is None and self.ratio is None
        self.mode = CodecMode.LOSSLESS if lossless else CodecMode.LOSSY
        self.max_error = 0 if lossless else None

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        image = check_image(image, bits, self.name)
        if self.mode is CodecMode.LOSSLESS:
            return strip_comments(imagecodecs.htj2k_encode(image, reversible=True))
        if self.qstep is not None:
            return _lossy(image, self.qstep, bits)
        budget = int(image.size * bits / 8 / self.ratio)
        log_finest = math.log(_FINEST_QSTEP)

        def encode_at(t: float) -> bytes:
            return _lossy(image, math.exp(t * log_finest), bits)

        return encode_within_budget(encode_at, budget)

    def decode(self, data: bytes) -> np.ndarray:
        data = as_bytes(data, self.name)
        check_structure(data, self.name)
        bits = read_bit_depth_note(data, self.name)
        with library_errors_as_corrupt(self.name):
            image = imagecodecs.htj2k_decode(data)
        image = check_decoded(image, self.name)
        if bits is not None:
            if bits > 8 * image.itemsize:
                raise CorruptDataError(f"htj2k stream notes {bits} bits for {image.dtype} samples")
            np.minimum(image, (1 << bits) - 1, out=image)
        return image

    @property
    def spec(self) -> str:
        if self.qstep is not None:
            return f"{self.name}:qstep={self.qstep:g}"
        if self.ratio is not None:
            return f"{self.name}:ratio={self.ratio:g}"
        return self.name

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "spec": self.spec,
            "params": {"qstep": self.qstep, "ratio": self.ratio},
            "library": f"{imagecodecs.htj2k_version()} via imagecodecs {imagecodecs.__version__}",
        }
