"""Stored pixel values as codecs want them: non-negative integers of a known bit depth.

DICOM stores signed data in two's complement; image codecs (JPEG-LS, JPEG XL) take unsigned
samples. Shifting by ``2**(bits-1)`` keeps neighbouring values neighbours (masking the bit pattern
would put -1 next to 4095 and ruin prediction), and the shift is stored wherever the data go.
"""

from __future__ import annotations

import numpy as np


def to_unsigned(values: np.ndarray, bits: int, signed: bool) -> tuple[np.ndarray, int]:
    """Return ``(unsigned array, offset)`` with ``unsigned = values + offset``.

    ``bits`` is the real bit depth (Bits Stored). Unsigned input is returned as ``uint8`` or
    ``uint16`` with offset 0; signed input is shifted by ``2**(bits-1)``.
    """
    if bits < 1 or bits > 16:
        raise ValueError(f"bit depth {bits} is outside 1..16")
    offset = 1 << (bits - 1) if signed else 0
    dtype = np.uint8 if bits <= 8 else np.uint16
    shifted = values.astype(np.int32) + offset
    if shifted.size and (shifted.min() < 0 or shifted.max() >= (1 << bits)):
        raise ValueError(f"values do not fit {bits} {'signed' if signed else 'unsigned'} bits")
    return shifted.astype(dtype), offset


def from_unsigned(values: np.ndarray, offset: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`to_unsigned`: ``int16`` for signed data, the input dtype otherwise."""
    if not signed:
        return values
    return (values.astype(np.int32) - offset).astype(np.int16)
