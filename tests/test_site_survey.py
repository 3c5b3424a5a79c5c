"""Data checks at the site: ``fedcodec join`` refuses an empty, missing or MR-less folder with one
line; CT series and unreadable files are skipped and counted per reason; the summary (patients,
studies, series, slices, skipped) is printed and kept for ``fedcodec privacy status``; a round
trains on MR only, and reports no training-data metric once the budget is spent."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.dicom.synthetic import make_mr, save

from fedcodec.client.cli import main as fedcodec
from fedcodec.client.federated.site_survey import load_survey, read_mr_series
from fedcodec.shared.errors import FedcodecError


def _series(folder, patient: str, uid: str, slices: int, modality: str = "MR", seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(slices):
        ds = make_mr(rng.integers(100, 2000, (24, 24)), series_uid=uid, instance=i + 1,
                     position=(0.0, 0.0, float(i)))
        ds.PatientID, ds.StudyInstanceUID, ds.Modality = patient, f"{uid}.9", modality
        save(ds, folder / f"{uid}-{i}.dcm")


@pytest.fixture
def site_folder(tmp_path):
    data = tmp_path / "st-a"
    _series(data / "p1", "P1", "1.2.3.1", 6)
    _series(data / "p2", "P2", "1.2.3.2", 6, seed=1)
    _series(data / "ct", "P3", "1.2.3.3", 3, modality="CT", seed=2)
    good = (data / "p1" / "1.2.3.1-0.dcm").read_bytes()
    (data / "broken.dcm").write_bytes(good[:-100])         # truncated in the pixel data
    (data / "notes.txt").write_text("export of 2026-12-01\n")  # not DICOM
    return data


def test_survey_keeps_mr_and_counts_every_skip(site_folder):
    series, survey = read_mr_series(site_folder, "st-a")
    assert sorted(s.patient_id for s in series) == ["P1", "P2"]
    assert (survey.patients, survey.studies, survey.series, survey.slices) == (2, 2, 2, 12)
    assert survey.skipped == {"series of modality CT (not MR)": 1,
                              "unreadable or corrupt DICOM file(s)": 1, "not-DICOM file(s)": 1}


def test_join_check_prints_the_summary_and_stores_policy(site_folder, tmp_path, capsys):
    state = tmp_path / "state"
    argv = ["join", "--check", "--keys", str(tmp_path / "k"), "--data-dir", str(site_folder),
            "--state-dir", str(state), "--target-epsilon", "4"]
    assert fedcodec(argv) == 0
    out = capsys.readouterr().out
    assert ("site st-a: 2 patients, 2 studies, 2 MR series, 12 slices; skipped: 1 not-DICOM "
            "file(s); 1 series of modality CT (not MR); 1 unreadable or corrupt DICOM file(s)") in out
    assert "ε ≤ 4" in out
    assert "warning: fedcodec site policy: site st-a refuses patient-level training: 2 patient(s) " \
           "< minimum 2000" in out
    assert load_survey(state).patients == 2
    assert fedcodec(["privacy", "status", str(state)]) == 0
    status = capsys.readouterr().out
    assert "site st-a: 2 patients" in status and "ε ≤ 4" in status


@pytest.mark.parametrize("make, message", [
    (lambda d: d.mkdir(), "is empty (no files)"),
    (lambda d: None, "does not exist"),
    (lambda d: _series(d, "P9", "1.2.9", 2, modality="CT"), "holds no MR series (skipped: 1 "
                                                             "series of modality CT (not MR))"),
    (lambda d: (d.mkdir(), (d / "a.txt").write_text("x")), "no DICOM images"),
])
def test_join_refuses_unusable_folders_in_one_line(tmp_path, capsys, make, message):
    folder = tmp_path / "export"
    make(folder)
    argv = ["join", "--check", "--keys", str(tmp_path / "k"), "--data-dir", str(folder),
            "--state-dir", str(tmp_path / "state")]
    assert fedcodec(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    with pytest.raises(FedcodecError):
        read_mr_series(folder)


def test_round_trains_on_mr_only_and_reports_nothing_from_training_data_when_spent(site_folder,
                                                                                  tmp_path):
    from fedcodec.client.federated.site_config import site_config
    from fedcodec.client.federated.site_policy import SitePolicy, save_policy
    from fedcodec.client.federated.site_round import load_site_data, run_site_round
    from fedcodec.server.federated.federation import initial_model, model_arrays
    from fedcodec.server.federated.federation_config import FederationConfig

    state = tmp_path / "state"
    save_policy(state, SitePolicy(min_patients=1))
    run = {"unit": "patient", "target-epsilon": 0.01, "noise-multiplier": 0.5, "local-steps": 2,
           "pixels-per-group": 8, "pixels-per-unit": 8, "max-slices": 2, "num-server-rounds": 1}
    config = site_config(run, {"data-dir": str(site_folder), "site": "st-a",
                               "state-dir": str(state)})
    site = load_site_data(config)
    assert site.train.n_units + len(site.heldout_series) <= 2  # P3's CT series is not there
    assert all("1.2.3.3" not in key for key in site.train_series + site.heldout_series)
    params = model_arrays(initial_model(FederationConfig.from_run_config(run)))
    out = run_site_round(config, params, 1, run)
    assert out.metrics["budget_exhausted"] == 1 and out.metrics["steps"] == 0
    assert "train_loss" not in out.metrics  # nothing computed on training units once spent
    assert "heldout_bpp" in out.metrics      # held-out series, allowed by the policy
    # the same round, at patient level, with the default minimum: refused before training
    save_policy(state, SitePolicy())
    strict = site_config(run, {"data-dir": str(site_folder), "site": "st-a",
                               "state-dir": str(state)})
    with pytest.raises(FedcodecError, match="1 patient\\(s\\) < minimum 2000"):
        run_site_round(strict, params, 2, run)
