"""Zstandard on the raw little-endian samples: the generic-compressor baseline.

A zstd frame records neither dtype nor shape, so each stream starts with an 18-byte header:

    offset size  field
    0      4     magic b"ZSTI" (zstd image)
    4      1     bytes per sample: 1 (uint8) or 2 (uint16, little-endian)
    5      1     bits (significant bits, 1..16; informative, checked against the samples)
    6      4     rows    (uint32 LE)
    10     4     columns (uint32 LE)
    14     4     CRC-32 of the raw samples (zlib.crc32), so damage inside the frame is caught
    18     ...   one zstd frame of rows*columns*bytes samples

zstd's own compression is single-threaded here (imagecodecs uses the one-shot ``ZSTD_compress``).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import imagecodecs
import numpy as np

from fedcodec.shared.codecs.base import Codec, register_codec
from fedcodec.shared.codecs.codec_checks import (
    as_bytes,
    check_image,
    check_number,
    library_errors_as_corrupt,
)
from fedcodec.shared.errors import CorruptDataError

MAGIC = b"ZSTI"
_HEADER = struct.Struct("<4sBBIII")
_MAX_PIXELS = 1 << 31
"""Refuse headers that would make us allocate more than a few GB for one slice."""


@register_codec
class ZstdCodec(Codec):
    """Lossless baseline: zstd at ``level`` (1..22, default 19) on the raw samples."""

    name = "zstd"

    def __init__(self, level: int = 19) -> None:
        super().__init__()
        self.level = int(check_number(self.name, "level", level, 1, 22, integer=True))

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        image = check_image(image, bits, self.name)
        raw = image.tobytes()
        header = _HEADER.pack(MAGIC, image.itemsize, int(bits), *image.shape, zlib.crc32(raw))
        return header + bytes(imagecodecs.zstd_encode(raw, level=self.level))

    def decode(self, data: bytes) -> np.ndarray:
        data = as_bytes(data, self.name)
        if len(data) < _HEADER.size or not data.startswith(MAGIC):
            raise CorruptDataError("zstd stream does not start with the ZSTI image header")
        _, itemsize, bits, rows, cols, crc = _HEADER.unpack_from(data)
        if itemsize not in (1, 2) or not 1 <= bits <= 8 * itemsize or (itemsize == 2 and bits <= 8):
            raise CorruptDataError(f"zstd stream header is invalid ({itemsize} B, {bits} bits)")
        if rows == 0 or cols == 0 or rows * cols > _MAX_PIXELS:
            raise CorruptDataError(f"zstd stream header has an invalid shape {rows}x{cols}")
        expected = rows * cols * itemsize
        with library_errors_as_corrupt(self.name):
            raw = bytes(imagecodecs.zstd_decode(data[_HEADER.size :], out=expected))
        if len(raw) != expected:
            raise CorruptDataError(f"zstd stream holds {len(raw)} bytes, header says {expected}")
        if zlib.crc32(raw) != crc:
            raise CorruptDataError("zstd stream fails its CRC-32 check (damaged data)")
        dtype = np.dtype("<u1") if itemsize == 1 else np.dtype("<u2")
        image = np.frombuffer(raw, dtype=dtype).reshape(rows, cols).astype(dtype.newbyteorder("="))
        if int(image.max()) >= 1 << bits:
            raise CorruptDataError(f"zstd stream holds values beyond its {bits} bits")
        return image

    @property
    def spec(self) -> str:
        return self.name if self.level == 19 else f"{self.name}:level={self.level}"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "spec": self.spec,
            "params": {"level": self.level},
            "library": f"{imagecodecs.zstd_version()} via imagecodecs {imagecodecs.__version__}",
        }
