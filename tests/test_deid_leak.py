"""Must show (issue 5, item 4): real multi-vendor files seeded with PHI leak nothing after deid.

Real files from ``../shared/data/dicom`` (GE, Philips, Siemens mosaics incl. JPEG and JPEG 2000,
Toshiba, a signed 12-bit edge case) plus pydicom-data's Enhanced MR multi-frame files (native and
JPEG 2000) and a Siemens image with overlays are copied to ``tmp_path`` and seeded with unique
canary strings in every kind of place PHI hides: patient/physician/institution attributes, dates,
times and date-times, free text, nested sequences three deep, private tags and private sequences,
overlay and curve groups, an unknown public tag, the file meta, the preamble and trailing padding.
After ``deidentify_folder`` the *raw bytes* of every output file are scanned.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import data_store
import numpy as np
import pydicom
import pytest
from conftest import require_shared_data
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from fedcodec.client.cli import main as fedcodec_main
from fedcodec.shared.deid import (
    NotDicomError,
    UidMapper,
    deidentify_file,
    deidentify_folder,
    deidentify_series,
)
from fedcodec.shared.dicom import read_series
from fedcodec.shared.errors import CorruptDataError, FedcodecError

KEY = b"fedcodec-test-site-key-32-bytes!"
PYDICOM_DATA = Path(data_store.__file__).parent / "data"
SHARED_FILES = [
    "ge/In/01_Ax_DWI_TENSOR_R2/i22.MRDC.1",
    "ge/In/01_Ax_DWI_TENSOR_R2/i23.MRDC.2",
    "ge/In/05_3D_Ax_T1_MP_RAGE_R22/i152.MRDC.5",
    "philips/In/Vanderbilt_2018/601_WIP_dti_ax/0016.dcm",
    "philips/In/Vanderbilt_2018/601_WIP_dti_ax/0017.dcm",
    "siemens/siemens_c/In/20180918Si/mr_0003/epi_pe_ap-00001.dcm",
    "siemens/siemens_c/In/20180918Si/mr_0003/epi_pe_ap-00002.dcm",
    "siemens/siemens_c/In/20180918Si/mr_0004/epi_pe_pa-00001.dcm",
    "siemens/siemens_a/In/Orientation/axmb/AxAsc36mb2a/jpg1.dcm",
    "siemens/siemens_a/In/Orientation/axmb/AxInt36mb/jp2k1.dcm",
    "siemens/siemens_b/In/HFS/3_t1_fl2d_sag/"
    "0001_1.3.12.2.1107.5.2.43.67060.2022040715053454597060816.dcm",
    "toshiba/In/Galan/8006_DTI_AX_30d/0001.dcm",
    "toshiba/In/Galan/8006_DTI_AX_30d/0002.dcm",
    "edge12/In/12bitSigned_0x0F0F.dcm",
]
PYDICOM_FILES = [
    "emri_small.dcm",  # Enhanced MR, 10 frames
    "emri_small_jpeg_2k_lossless.dcm",  # the same, encapsulated
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
]
MARK = "CNRY"


class Canaries:
    """Unique strings per file and field; every one is checked absent from every output."""

    def __init__(self, file_index: int) -> None:
        self.file_index = file_index
        self.count = 0
        self.all: list[str] = []

    def text(self) -> str:
        self.count += 1
        value = f"{MARK}{self.file_index:02d}{self.count:03d}"  # 9 chars: fits SH, AE, CS
        self.all.append(value)
        return value

    def date(self) -> str:
        self.count += 1
        value = f"18{self.file_index:02d}{self.count % 12 + 1:02d}07"
        self.all.append(value)
        return value

    def time(self) -> str:
        self.count += 1
        value = f"23{self.count % 60:02d}{self.file_index:02d}.753"
        self.all.append(value)
        return value

    def datetime(self) -> str:
        self.count += 1
        value = f"17{self.file_index:02d}{self.count % 12 + 1:02d}07235959.864"
        self.all.append(value)
        return value


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _seed(ds: Dataset, canaries: Canaries, sibling_sop: str | None) -> None:
    """PHI in every place the profile must reach, each value a unique canary."""
    c = canaries
    for keyword in (
        "PatientName", "ReferringPhysicianName", "OperatorsName", "PerformingPhysicianName",
        "NameOfPhysiciansReadingStudy", "RequestingPhysician", "PatientMotherBirthName",
    ):  # fmt: skip
        setattr(ds, keyword, f"{c.text()}^{c.text()}")
    for keyword in (
        "PatientID", "IssuerOfPatientID", "InstitutionName", "InstitutionalDepartmentName",
        "StudyDescription", "SeriesDescription", "ProtocolName", "PatientAddress",
        "RequestedProcedureDescription", "PerformedProcedureStepDescription", "MedicalAlerts",
        "ClinicalTrialSponsorName", "ClinicalTrialSubjectID",
    ):  # fmt: skip
        setattr(ds, keyword, f"{c.text()} {c.text()}")
    for keyword in (
        "AccessionNumber", "StudyID", "StationName", "DeviceSerialNumber",
        "PatientTelephoneNumbers", "Occupation", "PerformedLocation",
    ):  # fmt: skip
        setattr(ds, keyword, c.text())
    for keyword in (
        "ImageComments", "AdditionalPatientHistory", "PatientComments", "StudyComments",
    ):  # fmt: skip
        setattr(ds, keyword, f"free text about {c.text()} and {c.text()}")
    ds.InstitutionAddress = f"{c.text()} Street 1, {c.text()} City"
    for keyword in (
        "PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
        "InstanceCreationDate", "LastMenstrualDate",
    ):  # fmt: skip
        setattr(ds, keyword, c.date())
    for keyword in (
        "PatientBirthTime", "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime",
    ):  # fmt: skip
        setattr(ds, keyword, c.time())
    ds.AcquisitionDateTime = c.datetime()
    # values of removed identifying attributes typed again into attributes the profile keeps
    family = str(ds.PatientName).split("^")[0]
    ds.SequenceName = str(ds.PatientID).split()[0]  # SH: one word of the Patient ID
    ds.BodyPartExamined = family  # CS: the family name
    ds.ManufacturerModelName = f"model {ds.PatientID} of {ds.PatientName}"  # LO: whole values
    ds.SecondaryReviewDate = c.date()  # unlisted in the 2024b table: strict rule
    ds.SecondaryReviewerName = c.text()
    ds.add_new(0x00120099, "LO", c.text())  # a public tag no dictionary knows
    ds.ContentSequence = Sequence([_item(TextValue=f"report on {c.text()}", DateTime=c.datetime())])

    deepest = _item(
        PatientName=c.text(),
        PatientID=c.text(),
        PatientBirthDate=c.date(),
        InstitutionName=c.text(),
        ReferencedSOPClassUID=ds.SOPClassUID,
        ReferencedSOPInstanceUID=sibling_sop or ds.SOPInstanceUID,
    )
    deepest.add_new(0x00331001, "LO", c.text())  # private, three levels down
    ds.ReferencedSeriesSequence = Sequence(  # unlisted: kept, and cleaned inside
        [
            _item(
                SeriesInstanceUID=ds.SeriesInstanceUID,
                ReferencedInstanceSequence=Sequence([deepest]),
                SequenceName=family,  # kept text inside a kept sequence
            )
        ]
    )
    ds.ReferencedPatientSequence = Sequence(
        [_item(ReferencedSOPInstanceUID=ds.SOPInstanceUID, PatientName=c.text())]
    )
    ds.RequestAttributesSequence = Sequence(
        [
            _item(
                RequestedProcedureID=c.text(),
                ScheduledProcedureStepDescription=c.text(),
                ReferencedStudySequence=Sequence([_item(PatientName=c.text())]),
            )
        ]
    )
    ds.OtherPatientIDsSequence = Sequence([_item(PatientID=c.text(), IssuerOfPatientID=c.text())])

    block = ds.private_block(0x0041, f"{c.text()} PRIVATE", create=True)
    block.add_new(0x01, "LO", c.text())
    block.add_new(0x02, "PN", c.text())
    inner = _item(PatientName=c.text())
    inner.add_new(0x00431010, "LO", c.text())
    block.add_new(0x03, "SQ", Sequence([inner]))

    ds.add_new(0x50002500, "LO", c.text())  # Curve Label
    ds.add_new(0x60020022, "LO", c.text())  # Overlay Description
    ds.add_new(0x60021500, "LO", c.text())  # Overlay Label
    ds.add_new(0x60024000, "LT", c.text())  # Overlay Comments
    ds.add_new(0xFFFCFFFC, "OB", c.text().encode() + b"\x00")  # Data Set Trailing Padding
    ds.file_meta.SourceApplicationEntityTitle = c.text()
    ds.file_meta.add_new(0x00020100, "UI", "1.2.3.4")  # Private Information Creator UID
    ds.file_meta.add_new(0x00020102, "OB", c.text().encode() + b"\x00")  # Private Information
    ds.preamble = c.text().encode().ljust(128, b"\x00")


def _sources() -> list[Path]:
    root = require_shared_data("dicom")
    return [root / name for name in SHARED_FILES] + [PYDICOM_DATA / name for name in PYDICOM_FILES]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Path, Canaries]]:
    """The seeded input folder and the canaries of each seeded file."""
    folder = tmp_path_factory.mktemp("seeded") / "Doe_Jane_19700101"
    folder.mkdir()
    sources = _sources()
    datasets = [pydicom.dcmread(path) for path in sources]
    by_series: dict[str, list[int]] = defaultdict(list)
    for index, ds in enumerate(datasets):
        by_series[ds.SeriesInstanceUID].append(index)
    canaries: dict[Path, Canaries] = {}
    for index, ds in enumerate(datasets):
        siblings = [i for i in by_series[ds.SeriesInstanceUID] if i != index]
        sibling_sop = datasets[siblings[0]].SOPInstanceUID if siblings else None
        original = sources[index].read_bytes()
        marks = Canaries(index)
        _seed(ds, marks, sibling_sop)
        for canary in marks.all:
            assert canary.encode() not in original, f"canary {canary} occurs in {sources[index]}"
        target = folder / f"{index:02d}_{sources[index].name.removesuffix('.dcm')}.dcm"
        ds.save_as(target, enforce_file_format=True)
        seeded_bytes = target.read_bytes()
        missing = [canary for canary in marks.all if canary.encode() not in seeded_bytes]
        assert not missing, f"seeding failed for {target.name}: {missing}"
        canaries[target] = marks
    (folder / "notes.txt").write_text(f"scan of patient {MARK}99999\n")
    return folder, canaries


@pytest.fixture(scope="module")
def deidentified(seeded, tmp_path_factory: pytest.TempPathFactory):
    folder, _ = seeded
    out = tmp_path_factory.mktemp("export") / "deid"
    result = deidentify_folder(folder, out, uid_key=KEY)
    return out, result


def _uids(ds: Dataset) -> list[str]:
    found = []
    for element in ds.iterall():
        if element.VR == "UI" and element.value:
            values = element.value if isinstance(element.value, list) else [element.value]
            found.extend(str(v) for v in values)
    return found


def _pairs(seeded, deidentified) -> list[tuple[Path, Dataset, Path, Dataset]]:
    """(seeded file, its dataset, output file, its dataset), matched by the mapped SOP UID."""
    folder, _ = seeded
    out, _ = deidentified
    mapper = UidMapper(KEY)
    outputs: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in sorted(out.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        outputs[(ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID)].append(path)
    pairs = []
    for source in sorted(folder.glob("*.dcm")):
        original = pydicom.dcmread(source)
        syntax = original.file_meta.TransferSyntaxUID
        target = outputs[(mapper.map_uid(original.SOPInstanceUID), syntax)].pop()
        pairs.append((source, original, target, pydicom.dcmread(target)))
    return pairs


def test_no_canary_and_no_original_uid_in_any_output_byte(seeded, deidentified) -> None:
    folder, canaries = seeded
    out, result = deidentified
    assert len(result.written) == len(canaries) == len(list(out.rglob("*.dcm")))
    assert [s.path.name for s in result.skipped] == ["notes.txt"]
    every_canary = sorted({c for marks in canaries.values() for c in marks.all})
    original_uids = set()
    for source in canaries:
        original_uids.update(
            uid for uid in _uids(pydicom.dcmread(source)) if uid not in UID_dictionary
        )
    assert len(every_canary) > 1000 and len(original_uids) > 60
    leaks = []
    for path in out.rglob("*"):
        data = path.read_bytes() if path.is_file() else path.name.encode()
        leaks += [f"{path.name}: {c}" for c in every_canary if c.encode() in data]
        leaks += [f"{path.name}: UID {u}" for u in original_uids if u.encode() in data]
        if MARK.encode() in data or b"Doe_Jane" in data:
            leaks.append(f"{path.name}: marker")
        if path.is_file():
            assert data[:128] == bytes(128), f"{path.name}: preamble not zeroed"
    print(f"[deid_leak] {len(every_canary):,} canaries and {len(original_uids)} original UIDs "
          f"in {len(canaries)} real files: {len(leaks)} found in the output bytes")  # README row
    assert not leaks, leaks[:20]


def test_every_uid_replaced_consistently_across_files(seeded, deidentified) -> None:
    mapper = UidMapper(KEY)
    pairs = _pairs(seeded, deidentified)
    series_map: dict[str, set[str]] = defaultdict(set)
    study_map: dict[str, set[str]] = defaultdict(set)
    out_sops = {str(o.SOPInstanceUID) for _, _, _, o in pairs}
    for _, original, _, output in pairs:
        series_map[original.SeriesInstanceUID].add(output.SeriesInstanceUID)
        study_map[original.StudyInstanceUID].add(output.StudyInstanceUID)
        assert output.FrameOfReferenceUID == mapper.map_uid(original.FrameOfReferenceUID)
        assert output.file_meta.MediaStorageSOPInstanceUID == output.SOPInstanceUID
        for uid in _uids(output):
            assert uid in UID_dictionary or mapper.is_mapped(uid), uid
        nested = output.ReferencedSeriesSequence[0]
        assert nested.SeriesInstanceUID == output.SeriesInstanceUID
        assert nested.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID in out_sops
    assert all(len(new) == 1 for new in series_map.values())
    assert all(len(new) == 1 for new in study_map.values())
    assert len({next(iter(v)) for v in series_map.values()}) == len(series_map)
    # GE DWI + T1, Siemens AP + PA and the two axmb series each share a study.
    assert len(study_map) < len(series_map)


def test_pixels_are_byte_identical_and_still_decode(seeded, deidentified) -> None:
    for source, original, target, output in _pairs(seeded, deidentified):
        assert output.PixelData == original.PixelData, target.name
        assert output.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert np.array_equal(output.pixel_array, original.pixel_array), source.name
        assert output.PatientIdentityRemoved == "YES"
        assert output.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert output["PatientName"].is_empty and output["PatientID"].is_empty
        assert not [e for e in output.iterall() if e.tag.is_private]


def test_second_pass_changes_nothing(deidentified, tmp_path: Path) -> None:
    out, _ = deidentified
    again = tmp_path / "again"
    deidentify_folder(out, again, uid_key=KEY)
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.dcm")}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*.dcm")}
    assert first == second


def test_series_path_leaks_nothing(seeded) -> None:
    folder, canaries = seeded
    subset = folder.parent / "series_subset"
    subset.mkdir(exist_ok=True)
    chosen = [p for p in canaries if "epi_pe_ap" in p.name or p.name.endswith("emri_small.dcm")]
    for path in chosen:
        shutil.copy(path, subset / path.name)
    series, _ = read_series(subset)
    assert sorted(len(s.datasets) for s in series) == [1, 2]  # Enhanced MR file; two mosaics
    assert all(s.volume.shape[0] > len(s.datasets) for s in series)  # frames / tiles split
    secrets = [c.encode() for path in chosen for c in canaries[path].all]
    mapper = UidMapper(KEY)
    for one in series:
        clean = deidentify_series(one, KEY)
        assert clean.series_uid == mapper.map_uid(one.series_uid) != one.series_uid
        assert np.array_equal(clean.volume, one.volume)
        for header in clean.datasets:
            assert header.SeriesInstanceUID == clean.series_uid
            buffer = pydicom.filebase.DicomBytesIO()
            pydicom.dcmwrite(buffer, header, enforce_file_format=True)
            assert not [c for c in secrets if c in buffer.getvalue()]


def test_corrupt_input_stops_the_run_and_leaves_no_output(seeded, tmp_path: Path) -> None:
    folder, canaries = seeded
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    victim = next(p for p in broken.glob("*.dcm") if "MRDC" in p.name)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 5000])
    out = tmp_path / "out"
    with pytest.raises(CorruptDataError, match="truncated") as info:
        deidentify_folder(broken, out, uid_key=KEY)
    assert victim.name in str(info.value) and "\n" not in str(info.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # no staged leftovers

    with pytest.raises(NotDicomError, match="not a DICOM file"):
        deidentify_file(broken / "notes.txt", tmp_path / "x.dcm", uid_key=KEY)
    only_text = tmp_path / "text"
    only_text.mkdir()
    (only_text / "a.txt").write_text("hello")
    with pytest.raises(FedcodecError, match="no DICOM files"):
        deidentify_folder(only_text, tmp_path / "out2", uid_key=KEY)
    assert not (tmp_path / "out2").exists() and not (tmp_path / "x.dcm").exists()


def test_cli_writes_the_export_and_reports_errors(seeded, tmp_path: Path, capsys) -> None:
    folder, canaries = seeded
    keyring = tmp_path / "keys" / "site-a"
    assert fedcodec_main(["keys", "init", "--site", "site-a", "--keyring", str(keyring)]) == 0
    out = tmp_path / "export"
    code = fedcodec_main(
        ["deid", str(folder), "-o", str(out), "--keyring", str(keyring), "--quiet",
         "--report", str(tmp_path / "report.json")]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and f"de-identified {len(canaries)} files" in printed
    assert len(list(out.rglob("*.dcm"))) == len(canaries)
    assert MARK not in (tmp_path / "report.json").read_text()

    code = fedcodec_main(["deid", str(folder), "-o", str(tmp_path / "x"), "--key-file", "k"])
    assert code == 2 and "fedcodec keys add-deid-key --from FILE" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.dcm").write_bytes(next(iter(canaries)).read_bytes()[:2000])
    code = fedcodec_main(
        ["deid", str(broken), "-o", str(tmp_path / "y"), "--keyring", str(keyring), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("fedcodec: error: ") and err.count("\n") == 1
    assert "a.dcm: truncated DICOM" in err
    assert not (tmp_path / "y").exists()


def test_report_counts_every_kind_of_rule(deidentified) -> None:
    _, result = deidentified
    report = result.report
    assert report.datasets == len(result.written)
    for action in ("X", "Z", "D", "U"):
        assert report.actions[action] > 0, action
    reasons = {reason for _, reason, _ in report.details}
    expected = {"table", "private", "overlay", "unknown-tag", "unlisted-date", "unlisted-name"}
    assert expected | {"file-meta"} <= reasons
    # Patient's Name is emptied at the top level and three levels down in every file; the other
    # nested copies sit in sequences that are removed whole (X).
    assert report.details[("Z", "table", "(0010,0010) Patient's Name")] == 2 * report.datasets


def test_removed_values_reappearing_in_kept_text_are_replaced_and_reported(
    seeded, deidentified
) -> None:
    """Patient ID and name typed into kept attributes: overwritten with X, same length, counted."""
    pairs = _pairs(seeded, deidentified)
    for _, original, _, output in pairs:
        assert output.SequenceName == "X" * len(original.SequenceName)
        assert output.BodyPartExamined == "X" * len(original.BodyPartExamined)
        model = str(output.ManufacturerModelName)
        assert model.startswith("model ") and set(model[6:].replace(" of ", "")) == {"X"}
        assert len(model) == len(original.ManufacturerModelName)
        item = output.ReferencedSeriesSequence[0]
        assert item.SequenceName == "X" * len(original.ReferencedSeriesSequence[0].SequenceName)
        assert output.get("Manufacturer") == original.get("Manufacturer")  # no PHI: unchanged
    _, result = deidentified
    replaced = {name: n for (action, reason, name), n in result.report.details.items()
                if action == "R" and reason == "reappearing-identifier"}
    for name in ("(0018,0024) Sequence Name", "(0018,0015) Body Part Examined",
                 "(0008,1090) Manufacturer's Model Name"):
        assert replaced.get(name, 0) >= result.report.datasets, (name, replaced)
    assert "identifying value replaced in kept text (R)" in result.report.summary()
