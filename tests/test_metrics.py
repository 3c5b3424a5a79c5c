"""Rate and distortion metrics against values computed by hand or by brute force.

No reference SSIM implementation is installed (scikit-image is not a dependency), so SSIM is
checked three independent ways: closed forms for constant images (where every window has zero
variance and SSIM reduces to the luminance term), a brute-force per-window computation with an
explicitly built 11x11 Gaussian, and the metric's known properties (1 for identical images,
symmetry, bounded by 1, monotone in noise). MS-SSIM is checked by its closed form for constant
images, where every contrast-structure term is exactly 1 and the product collapses to the
coarsest scale's luminance raised to its (renormalised) weight.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from fedcodec.shared.metrics import (
    MS_SSIM_WEIGHTS,
    SSIM_K1,
    SSIM_K2,
    bits_per_pixel,
    compression_ratio,
    max_abs_error,
    ms_ssim,
    ms_ssim_scales,
    psnr,
    ssim,
)


def smooth_image(shape: tuple[int, int], bits: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    peak = (1 << bits) - 1
    base = 0.5 + 0.3 * np.sin(x / 9.0) * np.cos(y / 13.0)
    noisy = base * peak + rng.normal(0, 0.01 * peak, shape)
    return np.clip(np.rint(noisy), 0, peak).astype(np.uint16)


def add_noise(image: np.ndarray, sigma: float, bits: int, seed: int) -> np.ndarray:
    noisy = image + np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(np.rint(noisy), 0, (1 << bits) - 1).astype(image.dtype)


def test_bits_per_pixel_and_ratio_relative_to_stored_bits() -> None:
    assert bits_per_pixel(1000, 4000) == 2.0
    assert compression_ratio(1000, 4000, 12) == 6.0  # 4000 px * 1.5 B / 1000 B
    assert compression_ratio(1000, 4000, 16) == 8.0
    assert compression_ratio(3000, 4000, 12) == pytest.approx(12 / bits_per_pixel(3000, 4000))
    with pytest.raises(ValueError):
        bits_per_pixel(10, 0)
    with pytest.raises(ValueError):
        compression_ratio(0, 10, 12)


def test_psnr_of_a_known_error() -> None:
    ref = np.zeros((10, 10), np.uint16)
    test = ref.copy()
    test[3, 4] = 5  # MSE = 25 / 100
    assert psnr(ref, test, 12) == pytest.approx(10 * math.log10(4095**2 / 0.25))
    assert psnr(test, ref, 12) == psnr(ref, test, 12)
    assert psnr(ref, test, 16) - psnr(ref, test, 12) == pytest.approx(20 * math.log10(65535 / 4095))


def test_psnr_is_infinite_for_identical_and_zero_at_full_scale_error() -> None:
    image = smooth_image((16, 16), 12, 0)
    assert psnr(image, image.copy(), 12) == math.inf
    zeros = np.zeros((4, 4), np.uint16)
    full = np.full((4, 4), 65535, np.uint16)
    assert psnr(zeros, full, 16) == pytest.approx(0.0)  # no uint16 wrap-around


def test_max_abs_error_is_exact_without_unsigned_wrap() -> None:
    ref = np.array([[0, 10], [65535, 7]], np.uint16)
    test = np.array([[65535, 3], [0, 7]], np.uint16)
    assert max_abs_error(ref, test) == 65535
    assert max_abs_error(ref, ref) == 0


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        ssim(np.zeros((8, 8)), np.zeros((8, 9)), 8)
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((8, 8)), np.zeros((9, 8)), 8)


def _constant_ssim(a: float, b: float, bits: int) -> float:
    """Closed form: zero variance everywhere, so SSIM is the luminance term alone."""
    c1 = (SSIM_K1 * ((1 << bits) - 1)) ** 2
    return (2 * a * b + c1) / (a * a + b * b + c1)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (20, 20), (64, 64)])
def test_ssim_of_constant_images_matches_the_closed_form(shape: tuple[int, int]) -> None:
    for a, b, bits in [(1000, 1200, 12), (0, 4095, 12), (100, 90, 8), (30000, 31000, 16)]:
        ref = np.full(shape, a, np.uint16)
        test = np.full(shape, b, np.uint16)
        assert ssim(ref, test, bits) == pytest.approx(_constant_ssim(a, b, bits), rel=1e-12)


def _brute_force_ssim(x: np.ndarray, y: np.ndarray, bits: int) -> float:
    """Every full 11x11 window, weighted by an explicit normalised Gaussian (sigma 1.5)."""
    offsets = np.arange(-5, 6)
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    weights /= weights.sum()
    c1 = (SSIM_K1 * ((1 << bits) - 1)) ** 2
    c2 = (SSIM_K2 * ((1 << bits) - 1)) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            wx, wy = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (weights * wx).sum(), (weights * wy).sum()
            vx = (weights * (wx - mx) ** 2).sum()
            vy = (weights * (wy - my) ** 2).sum()
            cov = (weights * (wx - mx) * (wy - my)).sum()
            numerator = (2 * mx * my + c1) * (2 * cov + c2)
            values.append(numerator / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


@pytest.mark.parametrize("shape", [(11, 11), (13, 17), (24, 19)])
@pytest.mark.parametrize("bits", [8, 12, 16])
def test_ssim_matches_a_brute_force_window_by_window_computation(
    shape: tuple[int, int], bits: int
) -> None:
    rng = np.random.default_rng(bits)
    ref = rng.integers(0, 1 << bits, shape).astype(np.uint16)
    noisy = ref + rng.normal(0, 0.05 * (1 << bits), shape)
    test = np.clip(noisy, 0, (1 << bits) - 1).astype(np.uint16)
    assert ssim(ref, test, bits) == pytest.approx(_brute_force_ssim(ref, test, bits), rel=1e-10)


def test_ssim_properties() -> None:
    ref = smooth_image((96, 80), 12, 1)
    light, heavy = add_noise(ref, 20, 12, 2), add_noise(ref, 200, 12, 3)
    assert ssim(ref, ref.copy(), 12) == pytest.approx(1.0, abs=1e-12)
    assert ssim(ref, light, 12) == pytest.approx(ssim(light, ref, 12), rel=1e-12)
    assert 1.0 > ssim(ref, light, 12) > ssim(ref, heavy, 12) > 0
    # The same pixels read as 16-bit data have a 16x larger L: noise matters less.
    assert ssim(ref, heavy, 16) > ssim(ref, heavy, 12)


def test_ssim_is_one_for_identical_full_range_16_bit_images() -> None:
    image = np.random.default_rng(4).integers(0, 1 << 16, (40, 40)).astype(np.uint16)
    assert ssim(image, image.copy(), 16) == pytest.approx(1.0, abs=1e-9)
    assert ms_ssim(image, image.copy(), 16) == pytest.approx(1.0, abs=1e-9)


def test_ms_ssim_scale_count_follows_the_image_size() -> None:
    assert ms_ssim_scales((256, 256)) == 5
    assert ms_ssim_scales((161, 400)) == 5  # 161 -> 81 -> 41 -> 21 -> 11: one window left
    assert ms_ssim_scales((160, 400)) == 4
    assert ms_ssim_scales((64, 64)) == 3  # 64 -> 32 -> 16 (-> 8 is too small)
    assert ms_ssim_scales((10, 10)) == 1
    assert ms_ssim_scales((1, 1)) == 1


@pytest.mark.parametrize("shape", [(256, 256), (64, 64), (7, 13)])
def test_ms_ssim_of_constant_images_matches_the_closed_form(shape: tuple[int, int]) -> None:
    scales = ms_ssim_scales(shape)
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    exponent = weights[-1] / weights.sum()
    ref = np.full(shape, 1000, np.uint16)
    test = np.full(shape, 1500, np.uint16)
    expected = _constant_ssim(1000, 1500, 12) ** exponent
    assert ms_ssim(ref, test, 12) == pytest.approx(expected, rel=1e-12)


def test_ms_ssim_equals_ssim_when_only_one_scale_fits() -> None:
    ref = smooth_image((15, 15), 12, 5)
    test = add_noise(ref, 60, 12, 6)
    assert ms_ssim_scales(ref.shape) == 1
    assert ms_ssim(ref, test, 12) == pytest.approx(ssim(ref, test, 12), rel=1e-12)


def test_ms_ssim_properties() -> None:
    ref = smooth_image((256, 256), 12, 7)
    light, heavy = add_noise(ref, 20, 12, 8), add_noise(ref, 400, 12, 9)
    assert ms_ssim(ref, ref.copy(), 12) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(ref, light, 12) == pytest.approx(ms_ssim(light, ref, 12), rel=1e-12)
    assert 1.0 > ms_ssim(ref, light, 12) > ms_ssim(ref, heavy, 12) >= 0.0
    inverted = (4095 - ref).astype(np.uint16)  # negative structure terms are clamped, not NaN
    assert 0.0 <= ms_ssim(ref, inverted, 12) < 0.5


def test_ssim_of_a_256_image_is_fast() -> None:
    # The target is a few ms; the bound is loose because the two cores are shared.
    ref = smooth_image((256, 256), 12, 10)
    test = add_noise(ref, 30, 12, 11)
    ssim(ref, test, 12)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        ssim(ref, test, 12)
        timings.append(time.perf_counter() - start)
    assert sorted(timings)[2] < 0.05
