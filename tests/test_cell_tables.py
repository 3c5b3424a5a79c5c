"""Near-lossless count tables per bound (``NeuralWeights.cell_counts``): chosen by the stream's
tau, part of the model id, round-tripped bit-exactly; models without them are unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.neural.codec import load_weights
from fedcodec.shared.neural.stream_format import unpack
from fedcodec.shared.neural.tables import ALPHABET, CENTRE_PHASE, N_BINS, PHASES
from fedcodec.shared.neural.weights import NeuralWeights, shipped_path


def _with_cells(tmp_path: Path, bounds=(2, 8)) -> Path:
    """neural_v1 with made-up cell tables (each bound a different sharpening of the lossless
    centre-phase tables): any counts >= 1 must code and decode exactly."""
    v1 = NeuralWeights.load(shipped_path("neural_v1"))
    centre = v1.counts[np.arange(N_BINS) * PHASES + CENTRE_PHASE]
    cells = {b: np.maximum(1, centre ** (1 + b / 16) // centre.max(axis=1, keepdims=True) ** (b / 16)
                           ).astype(np.int64) for b in bounds}
    path = tmp_path / "cells.npz"
    NeuralWeights(v1.nets, v1.counts, {"name": "test"}, cells).save(path)
    return path


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:48, 0:56]
    base = 900 + 300 * np.sin(x / 7.0) * np.cos(y / 9.0)
    return np.stack([base + rng.normal(0, 6 + 2 * i, base.shape) for i in range(3)]
                    ).clip(0, 4095).astype(np.uint16)


def test_the_set_is_chosen_by_the_bound(tmp_path: Path) -> None:
    weights = NeuralWeights.load(_with_cells(tmp_path))
    # the largest fitted bound at or below tau, while tau is at most twice it
    assert ([weights.table_bound(t) for t in (0, 1, 2, 3, 4, 5, 7, 8, 16, 17, 500)]
            == [0, 0, 2, 2, 2, 0, 0, 8, 8, 0, 0])
    assert weights.counts_for(1) is weights.counts
    rows = np.arange(N_BINS) * PHASES + CENTRE_PHASE
    assert np.array_equal(weights.counts_for(3)[rows], weights.cell_counts[2])
    others = np.setdiff1d(np.arange(N_BINS * PHASES), rows)
    assert np.array_equal(weights.counts_for(3)[others], weights.counts[others])
    assert weights.counts_for(500) is weights.counts


def test_cell_tables_are_part_of_the_model_id(tmp_path: Path) -> None:
    v1 = NeuralWeights.load(shipped_path("neural_v1"))
    with_cells = NeuralWeights.load(_with_cells(tmp_path))
    assert with_cells.model_id != v1.model_id
    assert NeuralWeights(v1.nets, v1.counts, {}).model_id == v1.model_id  # no sets: unchanged


@pytest.mark.parametrize("tau", [0, 1, 2, 5, 13, 40])
def test_streams_round_trip_and_take_the_tables_that_pay(tmp_path: Path, volume, tau) -> None:
    """Each slice codes with its model's near-lossless tables only where they code shorter
    (flag in the stream); streams round-trip within tau, also through a codec configured with
    another model; a slice's payload is never larger than with the lossless tables."""
    path = _with_cells(tmp_path)
    plain = get_codec(f"neural:tau={tau},fallback=0,weights=neural_v1")
    cells = get_codec(f"neural:tau={tau},fallback=0,weights={path}")
    a, b = plain.encode_volume(volume, 12), cells.encode_volume(volume, 12)
    for codec, streams in ((plain, a), (cells, b), (cells, a)):  # v1 streams by their id
        decoded = codec.decode_volume(streams).astype(np.int64)
        assert np.abs(decoded - volume).max() <= tau
    flagged = [unpack(x)[0].cell_tables for x in b]
    if not NeuralWeights.load(path).table_bound(tau):
        assert not any(flagged) and [len(x) for x in a] == [len(x) for x in b]
    for with_cells, without in zip(b, a, strict=True):  # both sets coded, the shorter kept
        assert len(unpack(with_cells)[1]) <= len(unpack(without)[1])


def test_a_stream_asking_for_tables_its_model_lacks_is_refused(volume) -> None:
    """The flag on a stream of a model without near-lossless tables: a one-line error."""
    from dataclasses import replace

    from fedcodec.shared.errors import CorruptDataError
    from fedcodec.shared.neural.stream_format import pack

    codec = get_codec("neural:tau=3,fallback=0,weights=neural_v1")
    header, words = unpack(codec.encode(volume[0], 12))
    forged = pack(replace(header, cell_tables=True), words)
    with pytest.raises(CorruptDataError, match="asks for near-lossless tables"):
        codec.decode(forged)


def test_weights_with_a_broken_set_are_refused(tmp_path: Path) -> None:
    v1 = NeuralWeights.load(shipped_path("neural_v1"))
    with pytest.raises(ValueError, match="bound 4 have the wrong shape"):
        NeuralWeights(v1.nets, v1.counts, {}, {4: np.ones((N_BINS, ALPHABET - 1), np.int64)})
    with pytest.raises(ValueError, match="bound 0"):
        NeuralWeights(v1.nets, v1.counts, {}, {0: np.ones((N_BINS, ALPHABET), np.int64)})
    models = load_weights(str(_with_cells(tmp_path)))[1]
    assert models.for_bound(3) is models.for_bound(2) and models.for_bound(1) is models
    assert models.for_bound(100) is models
