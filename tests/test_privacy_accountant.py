"""The site accountant: persisted, reloaded after a restart, and never past its target."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedcodec.client.federated.dp_training import LocalTrainConfig, train_local
from fedcodec.client.federated.unit_samples import KeyPool, UnitSamples
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.neural.features import feature_count
from fedcodec.shared.neural.geometry import GROUPS
from fedcodec.shared.neural.model import NeuralPredictor
from fedcodec.shared.neural.weights import MAX_REFS, net_key
from fedcodec.shared.privacy import PrivacyAccountant, PrivacyBudgetExceeded
from fedcodec.shared.privacy.accountant import epsilon_of


def test_epsilon_matches_opacus_and_grows_with_steps():
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    for _ in range(50):
        acc.step(noise_multiplier=1.1, sample_rate=0.05)
    assert epsilon_of([(1.1, 0.05, 50)], 1e-5) == pytest.approx(acc.get_epsilon(1e-5), rel=1e-12)
    assert epsilon_of([(1.1, 0.05, 20)], 1e-5) < epsilon_of([(1.1, 0.05, 50)], 1e-5)
    assert epsilon_of([], 1e-5) == 0.0


def test_state_survives_a_restart_and_budget_is_enforced(tmp_path):
    path = tmp_path / "site" / "privacy-patient.json"
    acc = PrivacyAccountant(path, "patient", target_epsilon=3.0, delta=1e-5)
    steps = acc.affordable_steps(1.5, 0.05, 40)
    assert steps == 40
    acc.record(1.5, 0.05, steps, {"round": 1})
    spent = acc.epsilon
    restarted = PrivacyAccountant(path, "patient", target_epsilon=3.0, delta=1e-5)
    assert restarted.epsilon == pytest.approx(spent, rel=1e-12)
    assert restarted.history == [(1.5, 0.05, 40)]
    # ask for far more than fits: the answer is the largest number of steps within the target
    fit = restarted.affordable_steps(1.5, 0.05, 10_000)
    assert 0 < fit < 10_000
    assert restarted.projected(1.5, 0.05, fit) <= 3.0 < restarted.projected(1.5, 0.05, fit + 1)
    with pytest.raises(PrivacyBudgetExceeded, match="patient-level"):
        restarted.record(1.5, 0.05, fit + 1)
    assert json.loads(path.read_text())["history"] == [[1.5, 0.05, 40]]  # refused: nothing written
    restarted.record(1.5, 0.05, fit)
    assert restarted.affordable_steps(1.5, 0.05, 5) == 0
    assert "patient-level" in restarted.describe() and "delta=1e-05" in restarted.describe()
    assert not list(path.parent.glob(".accountant-*"))  # no temp file left behind


def test_state_for_another_unit_or_a_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "privacy.json"
    PrivacyAccountant(path, "patient", 8.0, 1e-5).record(1.0, 0.1, 3)
    with pytest.raises(FedcodecError, match="tracks unit=patient"):
        PrivacyAccountant(path, "slice", 8.0, 1e-5)
    path.write_text("{not json")
    with pytest.raises(CorruptDataError, match="unreadable"):
        PrivacyAccountant(path, "patient", 8.0, 1e-5)


def _toy_units(n_units: int, pixels: int, seed: int = 0) -> UnitSamples:
    """Synthetic pixels: features are noise, targets sit near mu0 (enough to train on)."""
    rng = np.random.default_rng(seed)
    pools = {}
    for n_refs in range(MAX_REFS + 1):
        for g in GROUPS:
            total = n_units * pixels
            mu0 = rng.integers(100, 200, total)
            arrays = {
                "features": rng.integers(-64, 64, (total, feature_count(g, n_refs))).astype(np.int16),
                "target": (mu0 + rng.integers(-3, 4, total)).astype(np.int32),
                "mu0": mu0.astype(np.int32),
                "s16": np.full(total, 48, np.int32),
                "log_s16": np.full(total, 6 * 64, np.int32),
                "maxval": np.full(total, 4095, np.int32),
            }
            counts = np.full(n_units, pixels, np.int64)
            pools[net_key(g.name, n_refs)] = KeyPool(arrays, np.arange(n_units) * pixels, counts)
    return UnitSamples("patient", [f"patient:{i}" for i in range(n_units)], pools)


def test_training_stops_at_the_budget_across_restarts(tmp_path):
    """Rounds keep asking for steps; the site's ε never passes its target, even when the
    accountant is reloaded from disk before every round (a restarted site)."""
    samples = _toy_units(20, 16)
    model = NeuralPredictor(hidden=8)
    config = LocalTrainConfig(steps=15, batch_units=4, pixels_per_unit=8, noise_multiplier=1.5,
                              planned_rounds=1)
    path = tmp_path / "privacy-patient.json"
    spent, steps = [], []
    for round_index in range(1, 5):
        accountant = PrivacyAccountant(path, "patient", target_epsilon=4.0, delta=1e-5)
        result = train_local(model, samples, config, accountant, round_index)
        spent.append(PrivacyAccountant(path, "patient", 4.0, 1e-5).epsilon)
        steps.append(result.steps)
    assert max(spent) <= 4.0
    assert spent == sorted(spent)
    # a full round, then the part of a round that still fits, then refusals
    assert steps[0] == 15 and 0 < steps[1] < 15 and steps[2:] == [0, 0]
    assert spent[1] == pytest.approx(4.0, abs=0.25)
    assert PrivacyAccountant(path, "patient", 4.0, 1e-5).affordable_steps(1.5, 0.2, 1) == 0
