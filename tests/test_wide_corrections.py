"""Wide mean corrections (``mean_fit.taps``): least-squares weights over up to 96 decoded pixels
around each pixel, for matrices scanners interpolate by zero-filling k-space (a sinc kernel no
12-16-pixel neighbourhood captures). The tap list, the encoder's choice of how many taps, the
stream's counted corrections (0xA8 flags bit 5), and exact decoding, lossless and bounded."""

from __future__ import annotations

import numpy as np
import pytest

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.neural import mean_fit
from fedcodec.shared.neural.geometry import GROUPS, neighbour_indices, tap_indices
from fedcodec.shared.neural.stream_format import unpack


def _zero_filled(side: int = 64, factor: int = 2, seed: int = 5) -> np.ndarray:
    """A noisy 64x64 'acquisition' reconstructed on a 128x128 matrix by zero-filling its
    k-space, as MR scanners do (magnitude of the complex result, 12 bits)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    image = 1500 + 600 * np.sin(x / 4.0) * np.cos(y / 6.0) + rng.normal(0, 30, (side, side))
    k = np.fft.fftshift(np.fft.fft2(image))
    big = side * factor
    padded = np.zeros((big, big), dtype=complex)
    start = (big - side) // 2
    padded[start:start + side, start:start + side] = k
    fine = np.abs(np.fft.ifft2(np.fft.ifftshift(padded))) * factor * factor
    return np.clip(np.rint(fine), 0, 4095).astype(np.uint16)


def test_taps_start_with_the_networks_neighbours_and_are_all_known() -> None:
    for group in GROUPS:
        taps = mean_fit.taps(group)
        assert taps[:len(group.offsets)] == group.offsets and len(set(taps)) == len(taps)
        known = {(dy % 2, dx % 2) for dy, dx in group.offsets}
        assert all((dy % 2, dx % 2) in known for dy, dx in taps)  # decoded before the group
        assert max(max(abs(dy), abs(dx)) for dy, dx in taps) == mean_fit.WIDE_RADIUS
        counts = mean_fit.tap_counts(group)
        assert counts[0] == len(group.offsets) and counts[-1] == len(taps)
        assert mean_fit.tap_counts(group, mean_fit.WIDE_MAX_TAU) == counts
        assert mean_fit.tap_counts(group, mean_fit.WIDE_MAX_TAU + 1) == (len(group.offsets),)
    assert [len(mean_fit.taps(g)) for g in GROUPS] == [36, 60, 96]


@pytest.mark.parametrize("shape", [(9, 7), (40, 34)])
def test_tap_indices_mirror_at_the_edges_as_the_network_neighbours_do(shape) -> None:
    """The fast path (index + constant inside, the mirror rule near the edge) gives, for the
    network's neighbours, the indices :func:`neighbour_indices` gave before wide taps (the rule
    written out here), on any grid; a subset of pixels gets the same indices."""
    h, w = shape
    for group in GROUPS:
        rows, cols = np.meshgrid(np.arange(group.row_phase, h, 2),
                                 np.arange(group.col_phase, w, 2), indexing="ij")
        r, c = rows.ravel(), cols.ravel()
        anchor = (r - group.row_phase) * w + (c - group.col_phase)
        for k, (dy, dx) in enumerate(group.offsets):
            inside = (0 <= r + dy) & (r + dy < h) & (0 <= c + dx) & (c + dx < w)
            mirror = (0 <= r - dy) & (r - dy < h) & (0 <= c - dx) & (c - dx < w)
            rule = np.where(inside, (r + dy) * w + c + dx,
                            np.where(mirror, (r - dy) * w + c - dx, anchor))
            assert np.array_equal(neighbour_indices(shape, group)[k], rule)
        select = np.arange(0, r.size, 3)
        offsets = mean_fit.taps(group)
        full = list(tap_indices(shape, group, offsets))
        for index, part in zip(full, tap_indices(shape, group, offsets, select), strict=True):
            assert np.array_equal(part, index[select])
            assert index.min() >= 0 and index.max() < h * w


@pytest.mark.parametrize("tau", [0, 2])
def test_a_zero_filled_matrix_takes_wide_corrections_and_decodes(tau: int,
                                                                 monkeypatch) -> None:
    image = _zero_filled()
    codec = get_codec(f"neural:tau={tau},fallback=0")
    stream = codec.encode(image, 12)
    header = unpack(stream)[0]
    counts = {len(w) for _, w in header.corrections}
    assert counts - {12, 16}, f"no wide correction chosen: {counts}"
    decoded = get_codec("neural").decode(stream).astype(np.int64)
    assert np.abs(decoded - image).max() <= tau
    monkeypatch.setattr(mean_fit, "tap_counts", lambda group, tau=0: (len(group.offsets),))
    narrow = codec.encode(image, 12)
    assert {len(w) for _, w in unpack(narrow)[0].corrections} <= {12, 16}
    assert len(stream) < len(narrow)
