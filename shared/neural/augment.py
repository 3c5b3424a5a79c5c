"""Training augmentation for the ``neural`` coder: copies of a series the scanners at hand rarely
produce.

The context features are normalised by local activity, so plain intensity scaling changes
little; what the training sources lack is other bit depths (8-bit exports), other orientations
(the B/C/D pyramid groups are not symmetric under a transpose: a sagittal stack stored
transposed looks new to them) and other matrix sizes (a 2x2 average halves the matrix and lowers
the noise, as a coarser acquisition does). Each copy keeps whole slices, so inter-slice context
is sampled as for the original.
"""

from __future__ import annotations

import numpy as np

AUGMENTATIONS = ("transpose", "8bit", "half")


def augmented(volume: np.ndarray, bits: int, kind: str) -> tuple[np.ndarray, int] | None:
    """One augmented copy of ``volume`` (slices, rows, cols; unsigned) and its bit depth, or None
    when the augmentation does not apply (already 8-bit; a matrix under 32 after halving)."""
    if kind == "transpose":
        return np.ascontiguousarray(volume.transpose(0, 2, 1)), bits
    if kind == "8bit":
        top = int(volume.max(initial=0)).bit_length()
        if top <= 8:
            return None
        return (volume >> (top - 8)).astype(np.uint8), 8
    if kind == "half":
        rows, cols = volume.shape[1] // 2 * 2, volume.shape[2] // 2 * 2
        if rows < 64 or cols < 64:
            return None
        v = volume[:, :rows, :cols].astype(np.uint32)
        pooled = (v[:, 0::2, 0::2] + v[:, 1::2, 0::2] + v[:, 0::2, 1::2] + v[:, 1::2, 1::2] + 2) >> 2
        return pooled.astype(volume.dtype), bits
    raise ValueError(f"unknown augmentation {kind!r} (one of {', '.join(AUGMENTATIONS)})")


def augmented_volumes(volumes: list[tuple[np.ndarray, int]]) -> list[tuple[np.ndarray, int]]:
    """Every applicable augmented copy of every ``(volume, bits)``."""
    return [copy for volume, bits in volumes for kind in AUGMENTATIONS
            if (copy := augmented(volume, bits, kind)) is not None]
