"""Rate and distortion numbers for integer images of a known bit depth.

Every distortion metric takes the real bit depth: a 12-bit MR image stored in uint16 has a peak of
4095, not 65535, and PSNR/SSIM computed against 65535 would flatter every codec by ~24 dB (PSNR)
or push SSIM's stabilising constants 16x too high.

Rate:
  ``bits_per_pixel(nbytes, pixels)``       = 8 * nbytes / pixels
  ``compression_ratio(nbytes, pixels, bits)`` = (pixels * bits / 8) / nbytes, i.e. relative to the
  *stored bits* (12-bit data count 1.5 bytes per pixel, not the 2 bytes of their container), so
  it equals ``bits / bits_per_pixel``. Ratios against the container would be 16/12 larger.

SSIM follows Wang, Bovik, Sheikh & Simoncelli (2004): an 11x11 Gaussian window with sigma 1.5
(``scipy.ndimage.gaussian_filter`` with ``truncate=3.5`` gives radius 5), K1 = 0.01, K2 = 0.03,
L = 2**bits - 1, local statistics weighted by the window (population moments), and the mean
taken over the "valid" region only (windows fully inside the image, as the reference MATLAB
``filter2(..., 'valid')`` does). Images smaller than the window (< 11 pixels on a side) use the
whole map with reflected borders instead, so they still get a number.

MS-SSIM follows Wang, Simoncelli & Bovik (2003): 5 scales, weights (0.0448, 0.2856, 0.3001,
0.2363, 0.1333), contrast-structure at every scale and full SSIM at the coarsest, downsampling by
2x2 averaging (odd sides repeat their last row/column, like MATLAB's ``imfilter(...,
'symmetric')`` followed by taking every other pixel). Five scales need 161 pixels on the shorter
side (the coarsest scale must still hold one 11x11 window); a smaller image uses as many scales
as fit (:func:`ms_ssim_scales`; 3 for 64x64) with the first weights renormalised to sum to 1.
Negative per-scale values are clamped to 0 before the fractional powers (as TensorFlow and
pytorch-msssim do), so MS-SSIM lies in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5, as scipy computes it: an 11x11 window
SSIM_K1 = 0.01
SSIM_K2 = 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def bits_per_pixel(nbytes: int, pixels: int) -> float:
    """Compressed size in bits per pixel."""
    if pixels <= 0:
        raise ValueError(f"pixel count must be positive, got {pixels}")
    return 8.0 * nbytes / pixels


def compression_ratio(nbytes: int, pixels: int, bits: int) -> float:
    """Raw size at ``bits`` per pixel over compressed size (see the module docstring)."""
    if nbytes <= 0 or pixels <= 0:
        raise ValueError(f"sizes must be positive, got {nbytes} bytes for {pixels} pixels")
    return pixels * bits / 8.0 / nbytes


def _pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, test = np.asarray(ref), np.asarray(test)
    if ref.shape != test.shape:
        raise ValueError(f"images differ in shape: {ref.shape} vs {test.shape}")
    if ref.size == 0:
        raise ValueError("images are empty")
    return ref, test


def _peak(bits: int) -> float:
    if not 1 <= bits <= 32:
        raise ValueError(f"bit depth {bits} is outside 1..32")
    return float((1 << bits) - 1)


def max_abs_error(ref: np.ndarray, test: np.ndarray) -> int:
    """Largest absolute pixel difference (exact, in integers)."""
    ref, test = _pair(ref, test)
    return int(np.max(np.abs(ref.astype(np.int64) - test.astype(np.int64))))


def mse(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error."""
    ref, test = _pair(ref, test)
    diff = ref.astype(np.float64) - test.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(ref: np.ndarray, test: np.ndarray, bits: int) -> float:
    """Peak signal-to-noise ratio in dB with peak ``2**bits - 1``; ``inf`` for identical images."""
    error = mse(ref, test)
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(_peak(bits) ** 2 / error)


def _ssim_maps(x: np.ndarray, y: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel luminance and contrast-structure terms, cropped to the valid region if any.

    SSIM needs only ``var_x + var_y``, never each alone, so four local moments suffice
    (mean x, mean y, mean of x^2 + y^2, mean of xy): one Gaussian pass over a 4-plane stack.
    """
    peak = _peak(bits)
    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    stack = np.empty((4, *x.shape))
    stack[0], stack[1] = x, y
    np.multiply(x, x, out=stack[2])
    stack[2] += y * y
    np.multiply(x, y, out=stack[3])
    ndimage.gaussian_filter(
        stack,
        sigma=(0, SSIM_SIGMA, SSIM_SIGMA),
        truncate=SSIM_TRUNCATE,
        mode="reflect",
        output=stack,
    )
    r = SSIM_RADIUS
    if min(x.shape) > 2 * r:
        stack = stack[:, r:-r, r:-r]
    mu_x, mu_y, squares, products = stack
    mu_xy = mu_x * mu_y
    mu_squares = mu_x * mu_x
    mu_squares += mu_y * mu_y
    luminance = (2.0 * mu_xy + c1) / (mu_squares + c1)
    contrast_structure = (2.0 * (products - mu_xy) + c2) / (squares - mu_squares + c2)
    return luminance, contrast_structure


def ssim(ref: np.ndarray, test: np.ndarray, bits: int) -> float:
    """Mean structural similarity (Wang et al. 2004) with ``L = 2**bits - 1``."""
    ref, test = _pair(ref, test)
    if ref.ndim != 2:
        raise ValueError(f"ssim takes 2-D images, got shape {ref.shape}")
    x, y = ref.astype(np.float64), test.astype(np.float64)
    luminance, contrast_structure = _ssim_maps(x, y, bits)
    return float(np.mean(luminance * contrast_structure))


def ms_ssim_scales(shape: tuple[int, ...]) -> int:
    """How many MS-SSIM scales (1..5) an image of this shape gets (see the module docstring)."""
    side = min(shape[-2:])
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS):
        side = -(-side // 2)
        if side <= 2 * SSIM_RADIUS:
            break
        scales += 1
    return scales


def _halve(image: np.ndarray) -> np.ndarray:
    """2x2 block mean; an odd side repeats its last row/column first."""
    rows, cols = image.shape
    if rows % 2 or cols % 2:
        image = np.pad(image, ((0, rows % 2), (0, cols % 2)), mode="edge")
    return 0.25 * (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2])


def ms_ssim(ref: np.ndarray, test: np.ndarray, bits: int) -> float:
    """Multi-scale SSIM (Wang et al. 2003) with ``L = 2**bits - 1``."""
    ref, test = _pair(ref, test)
    if ref.ndim != 2:
        raise ValueError(f"ms_ssim takes 2-D images, got shape {ref.shape}")
    scales = ms_ssim_scales(ref.shape)
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    x, y = ref.astype(np.float64), test.astype(np.float64)
    values = []
    for scale in range(scales):
        luminance, contrast_structure = _ssim_maps(x, y, bits)
        if scale == scales - 1:
            values.append(float(np.mean(luminance * contrast_structure)))
        else:
            values.append(float(np.mean(contrast_structure)))
            x, y = _halve(x), _halve(y)
    clamped = np.maximum(np.asarray(values), 0.0)
    return float(np.prod(clamped**weights))
