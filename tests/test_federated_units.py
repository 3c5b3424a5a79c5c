"""Privacy units in training: pixels filed by unit, and Opacus' per-sample gradient is the
gradient of one unit's whole loss (so clipping bounds a patient's, not a pixel's, influence)."""

from __future__ import annotations

import numpy as np
import torch

from fedcodec.client.federated.dp_training import UnitBatcher, UnitLoss
from fedcodec.client.federated.site_data import split_series
from fedcodec.client.federated.unit_samples import FIELDS, collect_unit_samples
from fedcodec.shared.dicom import Series
from fedcodec.shared.neural.model import NeuralPredictor


def _series(patient: str, uid: str, slices: int = 5, seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    base = rng.integers(200, 3000, (1, 24, 24))
    volume = (base + rng.integers(0, 60, (slices, 24, 24))).astype(np.uint16)
    return Series(uid, "1.2." + patient, patient, "t", "MR", volume, 12, False)


def test_slice_units_partition_the_series_samples_exactly():
    series = [_series("P1", "1.1"), _series("P1", "1.2", seed=1), _series("P2", "1.3", seed=2)]
    by_patient = collect_unit_samples(series, "patient", pixels_per_group=32, max_slices=4, seed=3)
    by_slice = collect_unit_samples(series, "slice", pixels_per_group=32, max_slices=4, seed=3)
    assert by_patient.unit_ids == ["patient:P1", "patient:P2"]
    assert by_slice.n_units == 12  # 4 contiguous slices (a random block) of each series
    for uid in ("1.1", "1.2", "1.3"):
        idx = sorted(int(u.rsplit("/", 1)[1]) for u in by_slice.unit_ids if u.startswith(f"slice:{uid}/"))
        assert idx == list(range(idx[0], idx[0] + 4))
    # same pixels, only filed differently: the sorted union of every network's targets agrees
    for key, pool in by_patient.pools.items():
        other = by_slice.pools[key]
        assert pool.counts.sum() == other.counts.sum() > 0 or key.endswith("2")
        for name in FIELDS:
            a, b = pool.arrays[name], other.arrays[name]
            assert a.shape == b.shape
            assert np.array_equal(np.sort(a, axis=0), np.sort(b, axis=0))
    # a slice unit owns only its own slice: first slices have no reference-slice networks
    block_start = min((u for u in by_slice.unit_ids if u.startswith("slice:1.1/")),
                      key=lambda u: int(u.rsplit("/", 1)[1]))
    first = by_slice.unit_ids.index(block_start)
    assert by_slice.pools["B1"].counts[first] == 0 and by_slice.pools["B0"].counts[first] > 0


def test_per_unit_gradient_is_the_gradient_of_that_units_loss():
    from opacus import GradSampleModule

    samples = collect_unit_samples([_series("P1", "1.1"), _series("P2", "1.2", seed=1),
                                    _series("P3", "1.3", seed=2)], "patient", 32, 3, seed=0)
    torch.manual_seed(0)
    model = NeuralPredictor(hidden=8)
    for p in model.parameters():  # non-zero output layer so every layer has a gradient
        torch.nn.init.normal_(p, std=0.05)
    batch = UnitBatcher(samples, 16, seed=1).batch(np.arange(3))
    module = GradSampleModule(UnitLoss(model), batch_first=True, loss_reduction="sum")
    module(batch).sum().backward()
    name, param = "nets.B0.hidden.0.weight", dict(model.named_parameters())["nets.B0.hidden.0.weight"]
    per_unit = param.grad_sample.detach().clone()
    module._close()
    for unit in range(3):
        single = {k: {f: t[unit:unit + 1] for f, t in v.items()} for k, v in batch.items()}
        model.zero_grad()
        UnitLoss(model)(single).sum().backward()
        assert torch.allclose(per_unit[unit], dict(model.named_parameters())[name].grad,
                              atol=1e-6), unit


def test_single_series_site_holds_out_trailing_slices():
    only = _series("P1", "1.1", slices=8)
    train, held = split_series([only], 0.25)
    assert train[0].volume.shape[0] == 6 and held[0].volume.shape[0] == 2
    assert np.array_equal(held[0].volume, only.volume[6:]) and held[0].key != train[0].key
    many = [_series("P1", f"1.{i}") for i in range(8)]
    train, held = split_series(many, 0.25)
    assert len(held) == 2 and not {s.key for s in train} & {s.key for s in held}
    assert [s.key for s in split_series(many, 0.25)[1]] == [s.key for s in held]  # stable


def test_dp_noise_is_unpredictable_unless_asked_to_be_reproducible():
    """The coordinator knows the run's seed: by default the noise must not follow from it."""
    from fedcodec.client.federated.dp_training import LocalTrainConfig, get_parameters, train_local
    from fedcodec.shared.privacy import PrivacyAccountant

    samples = collect_unit_samples([_series(f"P{i}", f"1.{i}", seed=i) for i in range(4)],
                                   "patient", 16, 2, seed=0)

    def trained(reproducible: bool) -> list[np.ndarray]:
        torch.manual_seed(0)
        model = NeuralPredictor(hidden=8)
        config = LocalTrainConfig(steps=2, batch_units=2, pixels_per_unit=8, noise_multiplier=1.0,
                                  reproducible_noise=reproducible)
        train_local(model, samples, config, PrivacyAccountant(None, "patient", 50.0, 1e-5), 1)
        return get_parameters(model)

    same = [np.array_equal(a, b) for a, b in zip(trained(True), trained(True))]
    differ = [np.array_equal(a, b) for a, b in zip(trained(False), trained(False))]
    assert all(same) and not all(differ)
