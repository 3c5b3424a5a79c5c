"""The period a multi-volume series is coded with: from the headers, the pixels, or a trial.

The shared-data check that the reader's ``positions_per_volume`` matches every series' real
layout is in ``test_dicom_read.py``; the byte figures are ``experiments/neural_geometry_period.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.dicom.frame_geometry import FrameGeometry
from fedcodec.shared.dicom.slice_order import SliceRecord, order_slices, positions_per_volume
from fedcodec.shared.neural.codec import stream_reach
from fedcodec.shared.neural.period_choice import choose_period, period_candidates, sample_indices

AXIAL = np.array([1.0, 0, 0, 0, 1.0, 0])


def _record(z: float | None, time: int, orientation=AXIAL) -> SliceRecord:
    position = None if z is None else np.array([0.0, 0.0, z])
    return SliceRecord(0, 0, Path(f"{time}-{z}.dcm"), "g",
                       FrameGeometry(position, orientation, (float(time),), (1.0, 0.0)))


def test_complete_volumes_give_their_positions_per_volume() -> None:
    records = [_record(z, t) for t in range(3) for z in (2.0, 0.0, 1.0, 3.0)]
    ordered = order_slices(records)
    assert [r.geometry.position[2] for r in ordered[:4]] == [0.0, 1.0, 2.0, 3.0]
    assert positions_per_volume(ordered) == 4
    assert positions_per_volume([_record(z, 0) for z in range(5)]) == 5  # one volume


def test_headers_that_do_not_say_give_no_period() -> None:
    incomplete = [_record(z, t) for t in range(2) for z in (0.0, 1.0, 2.0)][:-1]
    assert positions_per_volume(incomplete) is None
    unplaced = [_record(z, 0) for z in (0.0, 1.0)] + [_record(None, 1)]
    assert positions_per_volume(unplaced) is None
    no_orientation = [_record(z, 0, orientation=None) for z in (0.0, 1.0)]
    assert positions_per_volume(no_orientation) is None


def _volume(periodic: int, slices: int = 12, seed: int = 0) -> np.ndarray:
    """Slices that repeat (plus noise) every ``periodic`` slices; neighbours unrelated."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 4000, size=(periodic, 32, 32))
    noise = rng.integers(0, 3, size=(slices, 32, 32))
    return (base[np.arange(slices) % periodic] + noise).astype(np.uint16)


def test_candidates_are_the_detected_the_header_and_the_previous_slice() -> None:
    volume = _volume(4)
    assert period_candidates(volume, None) == [4, 1]
    assert period_candidates(volume, 3) == [4, 3, 1]
    assert period_candidates(volume, 4) == [4]  # headers and pixels agree: no trial
    assert period_candidates(volume, volume.shape[0]) == [4, 1]  # one volume: nothing to add
    smooth = np.repeat(np.arange(12, dtype=np.uint16)[:, None, None] * 10, 16, 1).repeat(16, 2)
    assert period_candidates(smooth, None) == [1]  # nothing to choose: no trial coding
    assert sample_indices(12, [4, 3, 1]) == [4, 8, 11]
    assert sample_indices(4, [4, 1]) == []


def test_the_cheapest_candidate_wins_and_a_single_one_is_not_tried() -> None:
    volume = _volume(4)
    tried: list[tuple[int, ...]] = []

    def cost(image, refs, offsets):
        tried.append(offsets)
        return 100 if offsets and offsets[0] == 3 else 200

    period, costs = choose_period(volume, 3, cost)
    assert period == 3 and costs == {4: 600, 3: 300, 1: 600}
    assert all(len(refs) for refs in tried)
    tried.clear()
    smooth = np.zeros((6, 8, 8), dtype=np.uint16)
    assert choose_period(smooth, None, cost) == (1, {})
    assert tried == []


def test_the_codec_codes_with_the_period_the_trial_picks_and_round_trips() -> None:
    volume = _volume(4)
    codec = get_codec("neural:fallback=0")
    bound = codec.with_volume_layout(6)  # a wrong header: the pixels' 4 must win the trial
    assert codec.header_period is None and bound.header_period == 6
    assert bound.volume_period(volume, 12) == 4
    streams = bound.encode_volume(volume, 12)
    assert max(map(stream_reach, streams)) == 4
    np.testing.assert_array_equal(bound.decode_volume(streams), volume)
    explicit = get_codec("neural:fallback=0,period=6")
    assert explicit.with_volume_layout(4) is explicit  # an explicit period is the user's choice
    assert explicit.volume_period(volume, 12) == 6


@pytest.mark.parametrize("spec", ["jxl", "jpegls:tau=2"])
def test_codecs_without_interslice_context_ignore_the_layout(spec: str) -> None:
    codec = get_codec(spec)
    assert codec.with_volume_layout(4) is codec
