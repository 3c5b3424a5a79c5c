"""``fedcodec privacy audit``: the one-run audit's statistics, and the positive control — the same
audit of training without DP must find a far larger ε than the DP-SGD run (the audit has power)."""

from __future__ import annotations

import math

import pytest
from conftest import require_shared_data

from fedcodec.shared.privacy.one_run_audit import epsilon_lower_bound, p_value


def test_one_run_bound_statistics():
    # r guesses all correct: the bound grows with r (ln of the binomial tail), never infinite
    assert epsilon_lower_bound(1000, 100, 100, 1e-5) == pytest.approx(3.465, abs=0.01)
    assert epsilon_lower_bound(1000, 200, 200, 1e-5) > epsilon_lower_bound(1000, 100, 100, 1e-5)
    # chance-level guessing refutes nothing
    assert epsilon_lower_bound(1000, 200, 100, 1e-5) == 0.0
    assert epsilon_lower_bound(1000, 0, 0, 1e-5) == 0.0
    # the p-value grows with ε and with δ
    assert p_value(100, 50, 40, 0.5, 0.0) < p_value(100, 50, 40, 1.0, 0.0)
    assert p_value(100, 50, 40, 1.0, 0.0) < p_value(100, 50, 40, 1.0, 1e-3)
    with pytest.raises(ValueError):
        p_value(10, 20, 5, 1.0, 0.0)


@pytest.mark.shared_data
def test_positive_control_has_power(tmp_path):
    from fedcodec.client.federated.dp_audit import quick_config, run_audit
    from fedcodec.client.federated.site_data import SiteDataConfig, load_site

    site = load_site(require_shared_data("dicom", "toshiba"),
                     SiteDataConfig(unit="slice", pixels_per_group=32, max_slices=4,
                                    holdout_fraction=0.0))
    fast = dict(canaries=200, steps=50, sample_rate=0.1, pixels_per_unit=16)
    dp = run_audit(site.train, quick_config(**fast))
    control = run_audit(site.train, quick_config(positive_control=True, **fast))
    assert 0 < dp.claimed_epsilon <= 8.0 and dp.noise_multiplier > 0
    assert math.isinf(control.claimed_epsilon) and control.noise_multiplier is None
    assert dp.empirical_epsilon <= dp.claimed_epsilon  # a lower bound above the claim = a DP bug
    assert control.correct >= 0.85 * control.guesses, control.line()
    assert control.empirical_epsilon >= 1.5 and control.empirical_epsilon > dp.empirical_epsilon + 1.0


def test_audit_command_bad_input(tmp_path, capsys):
    from fedcodec.client.cli import main

    assert main(["privacy", "audit", "--data-dir", str(tmp_path / "missing"), "--quick"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert main(["privacy", "audit", "--data-dir", str(tmp_path), "--unit", "ward"]) != 0
    assert "unknown privacy unit" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["privacy", "audit", "--data-dir", str(empty), "--quick"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
