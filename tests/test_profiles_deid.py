"""``--profile auto`` picks the same profile before and after ``fedcodec deid``.

De-identification removes Series Description and Protocol Name (PS3.15 action X); the built-in
rules also read attributes it keeps (Image Type, Sequence Name), so a localizer stays ``preview``,
a diffusion series ``diagnostic`` and an ordinary series ``archive`` on the copy that leaves the
site. The planner is the one ``fedcodec compress`` uses (``StudyPlanner`` over ``read_series``).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from conftest import require_shared_data
from test_profiles import _study as study_of_descriptions

from fedcodec.client.cli import main as fedcodec_main
from fedcodec.client.coding_plan import StudyPlanner
from fedcodec.client.compression import default_codec_spec
from fedcodec.shared.dicom import read_series
from fedcodec.shared.profiles import SeriesFacts, profile_for_series, rules_from_mapping

SERIES = {
    # description, Image Type, Sequence Name -> expected profile
    "3-plane localizer": (["ORIGINAL", "PRIMARY", "LOCALIZER"], "*fl2d1", "preview"),
    "Ax T1 MPRAGE": (["ORIGINAL", "PRIMARY", "M", "ND"], "*tfl3d1", "archive"),
    "ep2d_diff_b1000": (["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND"], "*ep_b1000t",
                        "diagnostic"),
}


def _study(folder: Path) -> Path:
    """One series per entry of SERIES (test_profiles' study), marked as a scanner marks them."""
    study_of_descriptions(folder, list(SERIES))
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        image_type, sequence_name, _ = SERIES[str(ds.SeriesDescription)]
        ds.ImageType, ds.SequenceName = image_type, sequence_name
        ds.ProtocolName = ds.SeriesDescription
        ds.save_as(path)
    return folder


def _deidentify(study: Path, out: Path, tmp_path: Path) -> Path:
    keyring = tmp_path / "keys" / "site-a"
    if not keyring.exists():
        assert fedcodec_main(["keys", "init", "--site", "site-a", "--keyring", str(keyring)]) == 0
    assert fedcodec_main(["deid", str(study), "-o", str(out), "--keyring", str(keyring),
                          "--quiet"]) == 0
    return out


def _auto_profiles(folder: Path) -> dict[str, str]:
    """Profile ``auto`` gives each series, keyed by its Image Type (which both copies keep)."""
    planner = StudyPlanner.from_options(default_codec_spec, mode=None, tau=0, quality=None,
                                        codec=None, profile="auto", rules=None)
    series, _ = read_series(folder)
    return {"\\".join(s.datasets[0].ImageType): planner.plan(SeriesFacts.of_series(s)).profile.name
            for s in series}


def test_auto_picks_the_same_profile_before_and_after_deid(tmp_path: Path) -> None:
    study = _study(tmp_path / "study")
    deidentified = _deidentify(study, tmp_path / "deid", tmp_path)
    expected = {"\\".join(image_type): profile for image_type, _, profile in SERIES.values()}
    for series in read_series(deidentified)[0]:
        assert series.description == "" and "ProtocolName" not in series.datasets[0]
    assert _auto_profiles(study) == expected
    assert _auto_profiles(deidentified) == expected


def test_description_rules_still_apply_when_the_description_is_there() -> None:
    plain = SeriesFacts(description="Localizer", slices=3,
                        header={"ImageType": ["ORIGINAL", "PRIMARY", "OTHER"]})
    assert profile_for_series(plain).name == "preview"
    assert profile_for_series(SeriesFacts(header={"ImageType": "LOCALIZER"})).name == "preview"
    # a value must be LOCALIZER, not merely contain it
    assert profile_for_series(SeriesFacts(header={"ImageType": "NOTLOCALIZER"})).name == "archive"
    assert profile_for_series(SeriesFacts(header={"ImageType": ["DERIVED", "FA"]})).name == (
        "diagnostic")
    assert profile_for_series(SeriesFacts()).name == "archive"


def test_site_rules_on_kept_attributes_and_slice_counts() -> None:
    rules = rules_from_mapping({"rule": [
        {"attributes": {"Modality": "^CT$", "ImageType": "^LOCALIZER$"}, "profile": "preview"},
        {"attributes": {"MRAcquisitionType": "^2D$"}, "max_slices": 3, "profile": "preview"},
        {"match": "flair", "min_slices": 20, "profile": "diagnostic"},
    ]}, "site.toml")
    ct_scout = {"Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}
    assert profile_for_series(SeriesFacts(header=ct_scout), rules).name == "preview"
    mr_scout = {"Modality": "MR", "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}
    assert profile_for_series(SeriesFacts(header=mr_scout), rules).name == "archive"  # all must hold
    two_d = {"MRAcquisitionType": "2D"}
    assert profile_for_series(SeriesFacts(slices=3, header=two_d), rules).name == "preview"
    assert profile_for_series(SeriesFacts(slices=4, header=two_d), rules).name == "archive"
    assert profile_for_series(SeriesFacts(header=two_d), rules).name == "archive"  # count unknown
    assert profile_for_series(SeriesFacts("Ax FLAIR", slices=24), rules).name == "diagnostic"
    assert profile_for_series(SeriesFacts("Ax FLAIR", slices=12), rules).name == "archive"
    assert profile_for_series("Ax FLAIR", rules).name == "archive"  # a description alone


def test_real_siemens_diffusion_stays_diagnostic_after_deid(tmp_path: Path) -> None:
    source = require_shared_data("dicom", "siemens", "siemens_b", "In", "HFS",
                                 "4_ep2d_diff_mddw_20_p2")
    deidentified = _deidentify(source, tmp_path / "deid", tmp_path)
    for folder in (source, deidentified):
        (series,) = read_series(folder)[0]
        assert profile_for_series(SeriesFacts.of_series(series)).name == "diagnostic", folder


@pytest.mark.parametrize("description", ["3-Plane Loc", "AAHScout_MPR_sag", "ASSET calibration"])
def test_planning_descriptions_without_kept_markers_fall_back_after_deid(description: str) -> None:
    """The documented limit: a localizer that only its description marks is archived (exact,
    never worse) once the description is gone."""
    header = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "NORM"]}
    assert profile_for_series(SeriesFacts(description, header=header)).name == "preview"
    assert profile_for_series(SeriesFacts("", header=header)).name == "archive"
