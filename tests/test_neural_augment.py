"""Training augmentation: each copy is what it says (values checked), and copies that would not
be new data are not made."""

from __future__ import annotations

import numpy as np
import pytest

from fedcodec.shared.neural.augment import (
    AUGMENTATIONS,
    SCALE_FACTOR,
    augmented,
    augmented_volumes,
    noise_sigma,
)


def _volume(bits: int = 12, shape=(3, 70, 66)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 1 << bits, shape).astype(np.uint16)


def test_transpose_swaps_rows_and_columns_of_every_slice() -> None:
    volume = _volume()
    copy, bits = augmented(volume, 12, "transpose")
    assert bits == 12 and copy.shape == (3, 66, 70)
    np.testing.assert_array_equal(copy[1], volume[1].T)


def test_8bit_keeps_the_top_eight_used_bits() -> None:
    volume = _volume() >> 1  # 11 bits used of 12
    copy, bits = augmented(volume, 12, "8bit")
    assert bits == 8 and copy.dtype == np.uint8
    np.testing.assert_array_equal(copy, volume >> 3)
    assert augmented(copy, 8, "8bit") is None  # already 8-bit


def test_half_averages_2x2_blocks_and_skips_small_matrices() -> None:
    volume = _volume()
    copy, bits = augmented(volume, 12, "half")
    assert bits == 12 and copy.shape == (3, 35, 33)
    block = volume[2, 4:6, 8:10].astype(np.int64)
    assert copy[2, 2, 4] == (block.sum() + 2) // 4
    assert augmented(_volume(shape=(2, 100, 60)), 12, "half") is None


def test_every_augmentation_of_a_list() -> None:
    copies = augmented_volumes([(_volume(), 12), (_volume(8, (2, 40, 40)).astype(np.uint8), 8)])
    # the 12-bit volume gets all three; the small 8-bit one only the transpose
    assert len(copies) == len(AUGMENTATIONS) + 1
    with pytest.raises(ValueError, match="unknown augmentation"):
        augmented(_volume(), 12, "rotate")


def test_noise_copy_doubles_the_measured_noise_and_is_reproducible() -> None:
    rng = np.random.default_rng(1)
    ramp = np.linspace(500, 1500, 96)[None, None, :] + np.zeros((2, 96, 1))
    volume = np.rint(ramp + rng.normal(0, 6.0, ramp.shape)).astype(np.uint16)
    assert 5.0 < noise_sigma(volume) < 7.0  # the ramp's own noise, not its gradient
    copy, bits = augmented(volume, 12, "noise")
    assert bits == 12 and copy.dtype == np.uint16 and copy.shape == volume.shape
    assert 1.8 < noise_sigma(copy) / noise_sigma(volume) < 2.2
    np.testing.assert_array_equal(copy, augmented(volume, 12, "noise")[0])  # seeded
    assert int(augmented(np.full((1, 8, 8), 4095, np.uint16), 12, "noise")[0].max()) <= 4095
    assert "noise" not in AUGMENTATIONS  # measured before it joins the default set


def test_zerofill_doubles_the_matrix_and_keeps_every_original_sample() -> None:
    """Zero-filled interpolation is band-limited interpolation: the even rows and columns of
    the copy are the original pixels (to rounding), the others lie between; a smooth ramp stays
    a ramp, the range is kept, and matrices over 512 are not doubled."""
    rng = np.random.default_rng(2)
    smooth = (np.sin(np.linspace(0, 2 * np.pi, 48, endpoint=False))[None, :, None]
              * np.cos(np.linspace(0, 4 * np.pi, 40, endpoint=False))[None, None, :])
    volume = np.rint(2000 + 1500 * smooth + rng.normal(0, 1, (2, 48, 40))).astype(np.uint16)
    copy, bits = augmented(volume, 12, "zerofill")
    assert bits == 12 and copy.dtype == np.uint16 and copy.shape == (2, 96, 80)
    assert np.abs(copy[:, ::2, ::2].astype(np.int64) - volume).max() <= 1
    between = copy[1, 1:-1:2, ::2].astype(np.int64)
    neighbours = (volume[1, :-1, :].astype(np.int64) + volume[1, 1:, :]) / 2
    assert np.abs(between - neighbours).mean() < 25  # smooth: close to the linear midpoint
    edge = np.zeros((1, 32, 32), np.uint16)
    edge[:, :, 16:] = 4095
    ringing, _ = augmented(edge, 12, "zerofill")
    assert ringing.min() == 0 and ringing.max() == 4095  # clipped to the bit depth
    assert augmented(_volume(shape=(1, 520, 64)), 12, "zerofill") is None


def test_scale_maps_the_signal_onto_fewer_grey_levels() -> None:
    """The ``scale`` copy is the original times 0.6, rounded half up: same shape, dtype and bit
    depth, the noise (in stored values) shrinks by the same factor, and a series that would keep
    fewer than 256 grey levels is not scaled."""
    rng = np.random.default_rng(3)
    ramp = np.linspace(500, 3000, 64)[None, None, :] + np.zeros((3, 64, 1))
    volume = np.rint(ramp + rng.normal(0, 8, ramp.shape)).astype(np.uint16)
    copy, bits = augmented(volume, 12, "scale")
    assert bits == 12 and copy.dtype == np.uint16 and copy.shape == volume.shape
    assert np.abs(copy - volume.astype(np.float64) * SCALE_FACTOR).max() <= 0.5
    assert 0.5 < noise_sigma(copy) / noise_sigma(volume) < 0.7
    assert len(np.unique(copy)) < len(np.unique(volume))
    assert augmented(np.full((1, 8, 8), 400, np.uint16), 12, "scale") is None
    assert "scale" not in AUGMENTATIONS  # measured before it joins the default set
