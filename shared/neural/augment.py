"""Training augmentation for the ``neural`` coder: copies of a series the scanners at hand rarely
produce.

The context features are normalised by local activity, so plain intensity scaling changes
little (measured with the ``scale`` copy: a wash, docs/neural-codec.md); what the training
sources lack is other bit depths (8-bit exports), other orientations (the B/C/D pyramid groups
are not symmetric under a transpose: a sagittal stack stored transposed looks new to them) and
other matrix sizes (a 2x2 average halves the matrix and lowers the noise, as a coarser
acquisition does). Each copy keeps whole slices, so inter-slice context
is sampled as for the original.
"""

from __future__ import annotations

import numpy as np

AUGMENTATIONS = ("transpose", "8bit", "half")
EXTRA_AUGMENTATIONS = ("noise", "zerofill", "scale")
"""Kinds not in the default set (measured before they join it: ``neural_loso.py
--augment-extra KIND``; ``fedcodec train --augment-noise``)."""
NOISE_FACTOR = 2.0
"""The ``noise`` copy has this many times the series' own noise (standard deviation)."""


def noise_sigma(volume: np.ndarray) -> float:
    """The series' noise standard deviation: the median absolute deviation of horizontal second
    differences (a linear ramp cancels; their noise is sqrt(6)x the pixels') inside the signal,
    at least 0.5 of a stored value."""
    v = volume.astype(np.int64)
    second = v[:, :, :-2] - 2 * v[:, :, 1:-1] + v[:, :, 2:]
    inside = (volume[:, :, :-2] > 0) & (volume[:, :, 1:-1] > 0) & (volume[:, :, 2:] > 0)
    values = second[inside] if inside.any() else second.ravel()
    mad = float(np.median(np.abs(values - np.median(values))))
    return max(0.5, 1.4826 * mad / np.sqrt(6.0))


def noisier(volume: np.ndarray, bits: int, seed: int = 0) -> np.ndarray:
    """``volume`` with added Gaussian noise so that its noise is :data:`NOISE_FACTOR` times its
    own (a lower field, thinner slices, a faster sequence), rounded and kept within ``bits``.
    The noise is seeded, so samples are reproducible."""
    sigma = noise_sigma(volume) * float(np.sqrt(NOISE_FACTOR ** 2 - 1.0))
    rng = np.random.default_rng(seed)
    noisy = np.rint(volume + rng.normal(0.0, sigma, volume.shape))
    return np.clip(noisy, 0, (1 << bits) - 1).astype(volume.dtype)


ZEROFILL_MAX_SIDE = 512
"""``zerofill`` doubles matrices up to this side (so copies stay within 1024^2)."""


def zero_filled(volume: np.ndarray, bits: int) -> np.ndarray:
    """``volume`` at twice the matrix by zero-filled interpolation: each slice's spectrum padded
    with zeros to twice its size and transformed back, as scanners interpolate a reconstruction
    to a finer matrix (ZIP 512, "2x interpolation": smooth images whose noise is correlated
    between neighbours, like pydicom-data's 1024^2 ``MR2_UNCR``). Rounded, kept within ``bits``
    (the ringing of a sharp edge can leave the range)."""
    slices, rows, cols = volume.shape
    top, left = rows - rows // 2, cols - cols // 2  # where the centred spectrum goes
    out = np.empty((slices, 2 * rows, 2 * cols), dtype=volume.dtype)
    padded = np.zeros((2 * rows, 2 * cols), dtype=np.complex128)
    for index, image in enumerate(volume):
        padded[top:top + rows, left:left + cols] = np.fft.fftshift(np.fft.fft2(image))
        fine = np.fft.ifft2(np.fft.ifftshift(padded)).real * 4.0
        out[index] = np.clip(np.rint(fine), 0, (1 << bits) - 1)
    return out


SCALE_FACTOR = 0.6
"""The ``scale`` copy's intensities are this fraction of the original's (not a power of two, so
it is no bit shift the ``8bit`` copy already covers)."""


def rescaled(volume: np.ndarray, factor: float = SCALE_FACTOR) -> np.ndarray:
    """``volume`` with every stored value times ``factor``, rounded (half up): a scanner or an
    export that maps the same signal onto fewer grey levels, so the noise spans fewer of them
    and the histogram is denser than the original's."""
    return np.floor(volume.astype(np.float64) * factor + 0.5).astype(volume.dtype)


def augmented(volume: np.ndarray, bits: int, kind: str) -> tuple[np.ndarray, int] | None:
    """One augmented copy of ``volume`` (slices, rows, cols; unsigned) and its bit depth, or None
    when the augmentation does not apply (already 8-bit; a matrix under 32 after halving; over
    :data:`ZEROFILL_MAX_SIDE` before doubling; under 256 grey levels after scaling)."""
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
    if kind == "noise":
        return noisier(volume, bits), bits
    if kind == "zerofill":
        if max(volume.shape[1:]) > ZEROFILL_MAX_SIDE:
            return None
        return zero_filled(volume, bits), bits
    if kind == "scale":
        if int(volume.max(initial=0)) * SCALE_FACTOR < 256:
            return None
        return rescaled(volume), bits
    known = ", ".join(AUGMENTATIONS + EXTRA_AUGMENTATIONS)
    raise ValueError(f"unknown augmentation {kind!r} (one of {known})")


def augmented_volumes(volumes: list[tuple[np.ndarray, int]],
                      kinds: tuple[str, ...] = AUGMENTATIONS) -> list[tuple[np.ndarray, int]]:
    """Every applicable augmented copy of every ``(volume, bits)``."""
    return [copy for volume, bits in volumes for kind in kinds
            if (copy := augmented(volume, bits, kind)) is not None]
