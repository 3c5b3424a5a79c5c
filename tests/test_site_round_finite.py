"""A site sends nothing when the global model or its own update holds NaN or infinity."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_shared_data
from fedcodec.client.federated import site_round
from fedcodec.client.federated.site_policy import REFUSAL_PREFIX, SiteRefusal


def test_refuse_non_finite_counts_the_bad_values() -> None:
    site_round.refuse_non_finite([np.zeros(3, np.float32)], "ge", "x")  # finite: no error
    arrays = [np.array([1.0, np.nan], np.float32), np.array([[np.inf, -np.inf]], np.float32)]
    with pytest.raises(SiteRefusal, match=r"site ge refuses the round: the local update has 3 "):
        site_round.refuse_non_finite(arrays, "ge", "the local update")


def _site(tmp_path):
    from fedcodec.client.federated.site_config import site_config
    from fedcodec.client.federated.site_policy import SitePolicy, save_policy

    save_policy(tmp_path / "sites" / "ge", SitePolicy(min_patients=1))
    run = {"sites": "ge", "data-root": str(require_shared_data("dicom")),
           "state-root": str(tmp_path / "sites"), "unit": "patient", "target-epsilon": 8.0,
           "local-steps": 2, "batch-units": 1.0, "pixels-per-unit": 16,
           "pixels-per-group": 16, "max-slices": 2}
    return site_config(run, {"partition-id": 0})


@pytest.mark.shared_data
def test_nan_in_the_global_model_or_the_update_is_refused(tmp_path, monkeypatch) -> None:
    from fedcodec.client.federated.dp_training import get_parameters
    from fedcodec.shared.neural.model import NeuralPredictor

    config = _site(tmp_path)
    start = [np.zeros_like(a) for a in get_parameters(NeuralPredictor(16))]
    poisoned = [a.copy() for a in start]
    poisoned[0].flat[0] = np.nan
    with pytest.raises(SiteRefusal, match="the coordinator's global model has 1 non-finite"):
        site_round.run_site_round(config, poisoned, 1)

    real_train = site_round.train_local

    def diverging(model, *args, **kwargs):
        result = real_train(model, *args, **kwargs)
        for parameter in model.parameters():
            parameter.data.fill_(float("inf"))
        return result

    monkeypatch.setattr(site_round, "train_local", diverging)
    with pytest.raises(SiteRefusal, match=f"^{REFUSAL_PREFIX}: site ge refuses the round: "
                                          "the local update has"):
        site_round.run_site_round(config, start, 1)
