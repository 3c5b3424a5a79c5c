"""Budget planning: ε shrinks with site size, matches the accountant, and the CLI writes a PNG."""

from __future__ import annotations

import pytest

from fedcodec.client.cli import main
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.privacy.accountant import epsilon_of
from fedcodec.shared.privacy.planning import epsilon_curve, plan_epsilon


def test_plan_matches_the_accountant_and_falls_with_site_size():
    rows = plan_epsilon([500, 2000, 10000], rounds=10, local_steps=5, batch_units=50,
                        noise_multiplier=1.1, delta=1e-5)
    assert [r.sample_rate for r in rows] == [0.1, 0.025, 0.005]
    assert rows[1].epsilon == pytest.approx(epsilon_of([(1.1, 0.025, 50)], 1e-5))
    assert rows[0].epsilon > rows[1].epsilon > rows[2].epsilon > 0
    curve = epsilon_curve(2000, 10, 5, 50, 1.1, 1e-5, points=5)
    assert [r for r, _ in curve] == [2, 4, 6, 8, 10]
    assert curve[-1][1] == pytest.approx(rows[1].epsilon)
    assert [e for _, e in curve] == sorted(e for _, e in curve)
    with pytest.raises(FedcodecError, match="at least one unit"):
        plan_epsilon([0], 1, 1, 1, 1.0, 1e-5)


def test_cli_prints_a_table_naming_the_unit_and_writes_the_curve(tmp_path, capsys):
    png = tmp_path / "plan.png"
    assert main(["privacy", "plan", "--units", "500", "10000", "--rounds", "4", "--local-steps",
                 "5", "--batch-units", "32", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "ε (patient)" in out and "δ = 1e-05" in out and "10,000" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["privacy", "plan", "--unit", "voxel", "--png", str(png)]) == 2
    assert "unknown privacy unit 'voxel'" in capsys.readouterr().err


def test_status_reads_a_sites_accountant(tmp_path, capsys):
    from fedcodec.shared.privacy import PrivacyAccountant

    acc = PrivacyAccountant(tmp_path / "privacy-slice.json", "slice", 8.0, 1e-5)
    acc.record(1.2, 0.1, 30, {"round": 1})
    assert main(["privacy", "status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"ε = {acc.epsilon:.3f} (slice-level, δ = 1e-05, rdp), target 8" in out
    assert "30 DP-SGD steps in 1 rounds" in out
    assert main(["privacy", "status", str(tmp_path / "none")]) == 2
    assert "no privacy accountant" in capsys.readouterr().err
