"""Compression profiles: the registry, the series-description rules, site rule files, and
``fedcodec compress --profile`` end to end (container header and DICOM output).

The mixed study is three copies of pydicom-data's 10-frame 12-bit MR under three series
descriptions (a localizer, a T1, a DWI), so ``auto`` must give three different codings in one
container and each decoded series must keep its own promise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from fedcodec.client.cli import main
from fedcodec.client.compression import compress_study, decompress_study, inspect_container
from fedcodec.shared.container import read_container
from fedcodec.shared.dicom import read_series
from fedcodec.shared.errors import FedcodecError, UnknownNameError
from fedcodec.shared.profiles import (
    BUILTIN_PROFILES,
    DEFAULT_RULES,
    Profile,
    get_profile,
    load_rules,
    profile_for_series,
    profile_names,
    rules_from_mapping,
)

PYDICOM_DATA = Path(pydicom.__file__).parents[1] / "data_store" / "data"
EMRI = PYDICOM_DATA / "emri_small.dcm"


# --- the registry ---------------------------------------------------------------------------


def test_builtin_profiles() -> None:
    assert profile_names() == ["archive", "diagnostic", "preview", "roi"]
    assert get_profile("archive").mode == "lossless"
    diagnostic = get_profile("diagnostic")
    assert (diagnostic.mode, diagnostic.tau) == ("near-lossless", 2)
    preview = get_profile("preview")
    assert (preview.mode, preview.ratio) == ("lossy", 20.0)
    assert preview.describe() == "preview (lossy, target ratio 20:1)"
    assert diagnostic.describe() == "diagnostic (near-lossless, tau 2)"


def test_roi_profile_is_lossy_with_an_exact_region() -> None:
    roi = get_profile("roi")  # implemented: ROI coding lives in tests/test_roi_coding.py
    assert (roi.mode, roi.roi_tau, roi.ratio) == ("lossy", 0, None)
    assert roi.describe() == "roi (ROI lossless, lossy outside)"


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="unknown profile 'fast'; use one of archive, "
                       "diagnostic, preview, roi or auto"):
        get_profile("fast")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "near-lossless"}, "near-lossless needs tau >= 1"),
        ({"mode": "lossless", "tau": 1}, "tau only applies to near-lossless"),
        ({"mode": "lossy"}, r"lossy needs a ratio in \(1, 1000\]"),
        ({"mode": "lossy", "ratio": 1.0}, r"lossy needs a ratio in \(1, 1000\]"),
        ({"mode": "lossless", "ratio": 5.0}, "ratio only applies to lossy"),
        ({"mode": "fast"}, "mode must be one of"),
    ],
)
def test_profile_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(FedcodecError, match=message):
        Profile("site", "test", **kwargs)
    with pytest.raises(FedcodecError, match="invalid profile name 'auto'"):
        Profile("auto", "test", "lossless")


# --- rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        # the series descriptions of ../shared/data/dicom, by vendor
        ("3D Ax T1 MP-RAGE_R22", "archive"),
        ("Ax DWI TENSOR R2", "diagnostic"),
        ("fMRI Multiphase Des 0.35Delay", "archive"),
        ("dti_ax", "diagnostic"),  # "_" separates tokens
        ("EPI_asc", "archive"),
        ("ep2d_diff_mddw_20_p2", "diagnostic"),
        ("DTI AX 30d", "diagnostic"),
        ("t1_fl2d_sag", "archive"),
        # planning and calibration scans
        ("3-Plane Loc", "preview"),
        ("Localizer", "preview"),
        ("AAHScout_MPR_sag", "preview"),
        ("ASSET calibration", "preview"),
        ("SURVEY", "preview"),
        # near misses stay exact
        ("T1 FA 15", "archive"),  # flip angle, not an FA map
        ("scoutish", "archive"),
        ("different", "archive"),
        ("", "archive"),
    ],
)
def test_default_rules(description: str, expected: str) -> None:
    assert profile_for_series(description).name == expected
    assert profile_for_series(description, DEFAULT_RULES).name == expected


RULES_TOML = """
default = "diagnostic"

[profiles.diagnostic]
tau = 1

[profiles.teleradiology]
purpose = "reading room at home"
mode = "lossy"
ratio = 12

[[rule]]
match = "^FLAIR"
profile = "teleradiology"

[[rule]]
match = "flair|t2"
profile = "archive"
"""


def test_rules_file_toml_and_json_agree(tmp_path: Path) -> None:
    toml = tmp_path / "rules.toml"
    toml.write_text(RULES_TOML)
    import tomllib

    as_json = tmp_path / "rules.json"
    as_json.write_text(json.dumps(tomllib.loads(RULES_TOML)))
    for path in (toml, as_json):
        rules = load_rules(path)
        assert rules.source == str(path)
        assert profile_for_series("FLAIR ax", rules).name == "teleradiology"  # first match wins
        assert profile_for_series("Ax flair", rules).name == "archive"
        assert profile_for_series("Sag T2", rules).name == "archive"
        other = profile_for_series("T1 MPRAGE", rules)
        assert (other.name, other.tau) == ("diagnostic", 1)  # the edited built-in
        tele = rules.get("teleradiology")
        assert (tele.mode, tele.ratio, tele.purpose) == ("lossy", 12.0, "reading room at home")
        assert rules.get("preview") == BUILTIN_PROFILES["preview"]  # untouched built-ins stay


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"default": "fast"}, "default names unknown profile 'fast'"),
        ({"rule": [{"match": "x", "profile": "nope"}]}, "rule 1 names unknown profile 'nope'"),
        ({"rule": [{"match": "(", "profile": "archive"}]}, "rule 1: bad regular expression"),
        ({"rule": [{"match": "x"}]}, "rule 1 must have 'profile' and conditions among"),
        ({"rule": [{"profile": "preview"}]}, "rule 1 has no condition"),
        ({"rule": [{"profile": "preview", "attributes": {"ProtocolName": "loc"}}]},
         "rule 1: attribute ProtocolName is removed or replaced by de-identification"),
        ({"rule": [{"profile": "preview", "attributes": {"StudyDate": "2020"}}]},
         "rule 1: attribute StudyDate is removed or replaced"),
        ({"rule": [{"profile": "preview", "attributes": {"ImageKind": "x"}}]},
         "rule 1: 'ImageKind' is not a DICOM attribute keyword"),
        ({"rule": [{"profile": "preview", "attributes": {"ImageType": "("}}]},
         "rule 1: bad regular expression"),
        ({"rule": [{"profile": "preview", "attributes": ["ImageType"]}]},
         "rule 1: 'attributes' must be a table"),
        ({"rule": [{"profile": "preview", "max_slices": 0}]}, "whole numbers >= 1"),
        ({"rule": [{"profile": "preview", "min_slices": 5, "max_slices": 3}]},
         "min_slices is larger than max_slices"),
        ({"rule": {"match": "x"}}, "'rule' must be an array of tables"),
        ({"rules": [], "rule": []}, "either 'rule' or 'rules'"),
        ({"color": "red"}, "unknown key 'color'"),
        ({"profiles": {"diagnostic": {"tau": 0}}}, "near-lossless needs tau >= 1"),
        ({"profiles": {"diagnostic": {"speed": 1}}}, "unknown key 'speed'"),
        ({"profiles": {"new": {"tau": 2}}}, "a new profile needs a mode"),
        ({"profiles": {"roi": {"roi_tau": 99}}}, "profile 'roi': roi_tau must be 0..15"),
        ({"profiles": {"preview": {"ratio": "high"}}}, "ratio must be a number"),
        ([], "must hold a table/object"),
    ],
)
def test_bad_rules_are_one_line_errors(doc, message: str) -> None:
    with pytest.raises(FedcodecError, match=message) as caught:
        rules_from_mapping(doc, "site.toml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("site.toml")


def test_unreadable_rules_files(tmp_path: Path) -> None:
    with pytest.raises(FedcodecError, match="no such profile rules file"):
        load_rules(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("default = \n")
    with pytest.raises(FedcodecError, match="bad.toml: not valid TOML"):
        load_rules(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(FedcodecError, match="bad.json: not valid JSON"):
        load_rules(bad_json)


# --- compress --profile ----------------------------------------------------------------------


def _study(folder: Path, descriptions: list[str]) -> Path:
    """One series per description, each a copy of the 10-frame MR with its own UIDs."""
    folder.mkdir()
    for index, description in enumerate(descriptions):
        ds = pydicom.dcmread(EMRI)
        ds.SeriesDescription = description
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = index + 1
        ds.save_as(folder / f"{index}.dcm")
    return folder


def _volumes(folder: Path) -> dict[str, np.ndarray]:
    series, _ = read_series(folder)
    return {s.description: s.volume for s in series}


def test_named_profile_applies_to_every_series(tmp_path: Path) -> None:
    study = _study(tmp_path / "study", ["Ax T1", "Sag T2"])
    fcz = tmp_path / "a.fcz"
    report = compress_study(study, fcz, profile="archive", progress=False)
    assert report.codec_spec == "neural" and report.max_error == 0 and not report.mixed
    container = read_container(fcz)
    assert container.version == 1  # one coding: readable by every version-1 reader
    assert container.header.profile == "archive"
    assert [e.profile for e in container.series] == ["archive", "archive"]
    assert all(e.coding is None for e in container.series)
    out = decompress_study(fcz, tmp_path / "out")
    for ds in (pydicom.dcmread(p) for p in out):
        assert ds.LossyImageCompression == "00"  # as the source says: the original instance
        assert "DerivationDescription" not in ds
    before, after = _volumes(study), _volumes(tmp_path / "out")
    for name, volume in before.items():
        np.testing.assert_array_equal(after[name], volume)


def test_preview_profile_is_lossy_and_recorded_in_dicom(tmp_path: Path) -> None:
    study = _study(tmp_path / "study", ["Ax T1"])
    fcz = tmp_path / "p.fcz"
    report = compress_study(study, fcz, profile="preview", progress=False)
    assert report.codec_spec == "neural:mode=lossy,ratio=20" and report.mode == "lossy"
    assert report.series[0].profile == "preview" and report.max_error > 0
    header = read_container(fcz).header
    assert (header.profile, header.mode, header.quality) == ("preview", "lossy", None)
    (path,) = decompress_study(fcz, tmp_path / "out")
    ds = pydicom.dcmread(path)
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "FEDCODEC_NEURAL"
    bound = report.series[0].bound
    assert ds.DerivationDescription.endswith(
        f"(fedcodec codec neural:mode=lossy,ratio=20, profile preview, every pixel within {bound} "
        "of the original stored value)")
    assert float(ds.LossyImageCompressionRatio) == pytest.approx(report.pixel_ratio, rel=1e-3)


def test_auto_profile_codes_each_series_by_its_description(tmp_path: Path) -> None:
    study = _study(tmp_path / "study", ["3-plane localizer", "Ax T1 MPRAGE", "Ax DWI b1000"])
    fcz = tmp_path / "auto.fcz"
    report = compress_study(study, fcz, profile="auto", progress=False)
    by_name = {s.description: s for s in report.series}
    assert {n: (s.profile, s.codec_spec) for n, s in by_name.items()} == {
        "3-plane localizer": ("preview", "neural:mode=lossy,ratio=20"),
        "Ax T1 MPRAGE": ("archive", "neural"),
        "Ax DWI b1000": ("diagnostic", "neural:tau=2"),
    }
    assert report.mixed and report.mode == "lossy"  # the study line is the least faithful
    assert by_name["Ax T1 MPRAGE"].max_error == 0
    assert by_name["Ax DWI b1000"].max_error <= 2

    container = read_container(fcz)
    assert container.version == 2  # series carry their own coding
    header = container.header
    assert (header.profile, header.codec.spec, header.mode) == (
        "auto", "neural:mode=lossy,ratio=20", "lossy")
    codings = {e.info.description: header.coding_of(i) for i, e in enumerate(container.series)}
    assert codings["Ax T1 MPRAGE"].codec.spec == "neural"
    assert codings["Ax T1 MPRAGE"].mode == "lossless"
    assert (codings["Ax DWI b1000"].mode, codings["Ax DWI b1000"].tau) == ("near-lossless", 2)
    localizer = next(e for e in container.series if e.info.description == "3-plane localizer")
    assert localizer.coding is None  # same as the header's: not repeated

    summary = inspect_container(fcz)
    assert {s["description"]: s["profile"] for s in summary.series} == {
        "3-plane localizer": "preview", "Ax T1 MPRAGE": "archive", "Ax DWI b1000": "diagnostic",
    }
    assert any("profile auto; series coded differently" in line for line in summary.lines())

    written = decompress_study(fcz, tmp_path / "out")
    outputs = {str(pydicom.dcmread(p).SeriesDescription): pydicom.dcmread(p) for p in written}
    originals = {str(ds.SeriesDescription): ds for ds in map(pydicom.dcmread, study.iterdir())}
    archive = outputs["Ax T1 MPRAGE"]
    assert archive.SOPInstanceUID == originals["Ax T1 MPRAGE"].SOPInstanceUID
    assert archive.LossyImageCompression == "00" and "DerivationDescription" not in archive
    for name, method, profile in (
        ("3-plane localizer", "FEDCODEC_NEURAL", "preview"),
        ("Ax DWI b1000", "FEDCODEC_NEURAL", "diagnostic"),
    ):
        ds = outputs[name]
        assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == method
        assert f", profile {profile}, every pixel within " in ds.DerivationDescription
        assert ds.SOPInstanceUID != originals[name].SOPInstanceUID

    before, after = _volumes(study), _volumes(tmp_path / "out")
    np.testing.assert_array_equal(after["Ax T1 MPRAGE"], before["Ax T1 MPRAGE"])
    error = np.abs(after["Ax DWI b1000"].astype(int) - before["Ax DWI b1000"].astype(int))
    assert 0 < error.max() <= 2
    assert np.abs(after["3-plane localizer"].astype(int) - before["3-plane localizer"]).max() > 2


def test_auto_with_a_site_rules_file_from_the_cli(tmp_path: Path, capsys) -> None:
    study = _study(tmp_path / "study", ["FLAIR ax", "Ax T1"])
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES_TOML)
    fcz = tmp_path / "s.fcz"
    code = main(["compress", str(study), "-o", str(fcz), "--profile", "auto",
                 "--profile-rules", str(rules), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "profile auto, per series:" in out
    assert ("FLAIR ax: profile teleradiology, codec neural:mode=lossy,ratio=12 (lossy, "
            "verified max error") in out
    assert "Ax T1: profile diagnostic, codec neural:tau=1 (near-lossless, verified max error" in out
    assert main(["inspect", str(fcz)]) == 0
    listing = capsys.readouterr().out
    assert "teleradiology" in listing and "neural:tau=1" in listing


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--profile", "roi"], "profile 'roi' codes a region of interest: give --roi-box"),
        (["--profile", "fast"], "unknown profile 'fast'"),
        (["--profile", "archive", "--mode", "lossy"],
         "--profile chooses the mode and codec; drop --mode"),
        (["--profile", "auto", "--codec", "zstd", "--tau", "2"], "drop --tau, --codec"),
        (["--profile-rules", "r.toml"], "--profile-rules needs --profile"),
        (["--profile", "auto", "--profile-rules", "missing.toml"], "no such profile rules file"),
    ],
)
def test_profile_option_errors(tmp_path: Path, capsys, extra: list[str], expected: str) -> None:
    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(EMRI, study / "a.dcm")
    code = main(["compress", str(study), "-o", str(tmp_path / "x.fcz"), *extra])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("fedcodec: error: ")
    assert expected in err
    assert not (tmp_path / "x.fcz").exists()


def test_the_study_coding_is_the_least_faithful_series() -> None:
    from fedcodec.client.coding_plan import SeriesPlan, study_plan

    exact = SeriesPlan("jxl", "lossless")
    tau2 = SeriesPlan("jpegls:tau=2", "near-lossless", 2)
    tau4 = SeriesPlan("jpegls:tau=4", "near-lossless", 4)
    lossy = SeriesPlan("neural:mode=lossy,ratio=20", "lossy")
    assert study_plan([exact, tau2, tau4]) is tau4
    assert study_plan([tau2, lossy, exact, tau4]) is lossy
    assert study_plan([exact, SeriesPlan("zstd", "lossless")]) is exact  # first of equals
    with pytest.raises(ValueError):
        study_plan([])
