"""Each rule of the Basic Profile and of fedcodec's stricter additions, on small built datasets."""

from __future__ import annotations

import copy
import io
import re
import uuid
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from fedcodec.shared.deid import (
    DeidentificationRefusedError,
    DeidOptions,
    DeidReport,
    UidMapper,
    deidentify,
    deidentify_series,
)
from fedcodec.shared.deid import profile_table
from fedcodec.shared.dicom.series import Series
from fedcodec.shared.errors import FedcodecError

KEY = bytes(range(32))
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
STUDY = "1.2.826.0.1.3680043.8.498.111"
SERIES = "1.2.826.0.1.3680043.8.498.222"
MAPPED = re.compile(r"^2\.25\.\d{1,39}$")


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _dataset(sop_class: str = MR_IMAGE, instance: str = "1.2.826.0.1.3680043.8.498.1") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = instance
    ds.file_meta.SourceApplicationEntityTitle = "SITEAE"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.333"
    ds.Modality = "MR"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-4711"
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = "20240102"
    ds.ContentDate = "20240102"
    ds.ContentTime = "101010"
    ds.AcquisitionDateTime = "20240102101010"
    ds.InstitutionName = "St Elsewhere"
    ds.DeviceSerialNumber = "SN12345"
    ds.OperatorsName = "Tech^Tom"
    ds.SeriesDescription = "T1 for Jane Doe"
    ds.AcquisitionContextSequence = Sequence([_item(ValueType="TEXT")])
    ds.Rows, ds.Columns = 2, 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.arange(4, dtype="<u2").tobytes()
    return ds


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def test_basic_actions_on_a_classic_mr_image() -> None:
    report = DeidReport()
    out = deidentify(_dataset(), uid_key=KEY, report=report)
    for emptied in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "ContentDate"):
        assert out[emptied].is_empty, emptied  # Z, and Z/D→Z for the Type 2C Content Date
    for removed in ("InstitutionName", "DeviceSerialNumber", "OperatorsName", "SeriesDescription"):
        assert removed not in out  # X, X/Z/D→X
    assert "AcquisitionContextSequence" not in out  # X/Z: Type 3 in MR Image
    assert "AcquisitionDateTime" not in out  # X/Z/D
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        assert MAPPED.match(getattr(out, keyword)), keyword
    assert out.SOPClassUID == MR_IMAGE and out.Modality == "MR" and out.Rows == 2
    assert out.PixelData == _dataset().PixelData
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert report.actions["Z"] == 6 and report.actions["U"] == 4
    assert report.details[("X", "file-meta", "(0002,0016) Source Application Entity Title")] == 1


def test_required_attributes_of_enhanced_mr_get_dummies_not_removal() -> None:
    out = deidentify(_dataset(ENHANCED_MR), uid_key=KEY)
    assert out.ContentDate == "19000101" and out.ContentTime == "000000"  # Z/D, Type 1
    assert out.AcquisitionDateTime == "19000101000000"  # X/Z/D, Type 1C
    assert out.DeviceSerialNumber == "ANONYMIZED"  # Enhanced General Equipment, Type 1
    assert len(out.AcquisitionContextSequence) == 0  # X/Z, Type 2
    assert "InstitutionName" not in out  # still Type 3


def test_nested_attributes_use_the_strictest_action_at_any_depth() -> None:
    ds = _dataset(ENHANCED_MR)
    frame = _item(
        FrameAcquisitionDateTime="20240102101010",  # D
        ContentDate="20240102",  # Z/D, but nested: Z
        OperatorsName="Nested^Operator",  # X/Z/D nested: X
        DeviceSerialNumber="SN-NESTED",  # X/Z/D nested: X
    )
    deeper = _item(PatientName="Deep^Name", ReferencedSOPInstanceUID="1.2.3.4.5.6")
    series_item = _item(ReferencedInstanceSequence=Sequence([deeper]))
    frame.ReferencedSeriesSequence = Sequence([series_item])
    ds.SharedFunctionalGroupsSequence = Sequence([_item(FrameContentSequence=Sequence([frame]))])
    out = deidentify(ds, uid_key=KEY)
    got = out.SharedFunctionalGroupsSequence[0].FrameContentSequence[0]
    assert got.FrameAcquisitionDateTime == "19000101000000"
    assert got["ContentDate"].is_empty
    assert "OperatorsName" not in got and "DeviceSerialNumber" not in got
    inner = got.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert inner["PatientName"].is_empty
    assert inner.ReferencedSOPInstanceUID == UidMapper(KEY).map_uid("1.2.3.4.5.6")


def test_dummy_sequence_dummies_everything_inside() -> None:
    ds = _dataset()
    ds.ContentSequence = Sequence(
        [
            _item(
                TextValue="Patient Jane Doe seen on 2024-01-02",
                ConceptNameCodeSequence=Sequence([_item(CodeValue="1", CodeMeaning="Finding")]),
                UID="1.2.826.0.1.3680043.8.498.9",
                ObservationDateTime="20240102101010",
            )
        ]
    )
    out = deidentify(ds, uid_key=KEY)
    item = out.ContentSequence[0]
    assert item.TextValue == "ANONYMIZED"
    assert item.ConceptNameCodeSequence[0].CodeMeaning == "ANONYMIZED"
    assert MAPPED.match(item.UID)
    assert "ObservationDateTime" not in item  # X/D stays X inside


def test_private_attributes_and_private_sequences_are_removed() -> None:
    ds = _dataset()
    block = ds.private_block(0x0029, "ACME PHI", create=True)
    block.add_new(0x01, "LO", "Jane Doe private")
    block.add_new(0x02, "SQ", Sequence([_item(PatientName="Private^Nested")]))
    ds.ReferencedSeriesSequence = Sequence([_item(SeriesInstanceUID=SERIES)])
    ds.ReferencedSeriesSequence[0].add_new(0x00311010, "LO", "nested private")
    report = DeidReport()
    out = deidentify(ds, uid_key=KEY, report=report)
    assert not [e for e in out.iterall() if e.tag.is_private]
    assert b"Jane Doe" not in _bytes(out) and b"Private^Nested" not in _bytes(out)
    assert report.details[("X", "private", "private attribute")] == 4  # creator, LO, SQ, nested


def test_retain_safe_private_keeps_only_checked_numbers() -> None:
    ds = _dataset()
    siemens = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    siemens.add_new(0x0A, "UN", b"\x10\x00")  # NumberOfImagesInMosaic, VR lost: decoded as US
    siemens.add_new(0x0C, "IS", "1000")  # B_value
    siemens.add_new(0x0B, "LO", "Jane Doe")  # a safe slot with the wrong VR: removed
    siemens.add_new(0x29, "UN", b"Jane Doe")  # MosaicRefAcqTimes (FD): implausible value
    siemens.add_new(0x0E, "FD", [float("nan"), 0.0, 1.0])  # not finite: removed
    siemens.add_new(0x08, "CS", "IMAGE NUM 4")  # not on the list
    ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", b"SV10")
    plain = deidentify(ds, uid_key=KEY)
    assert not [e for e in plain if e.tag.is_private]
    kept = deidentify(ds, uid_key=KEY, options=DeidOptions(retain_safe_private=True))
    private = {int(e.tag): e.value for e in kept if e.tag.is_private}
    assert private == {0x00190010: "SIEMENS MR HEADER", 0x0019100A: 16, 0x0019100C: "1000"}
    codes = [item.CodeValue for item in kept.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113111"]


def test_overlays_curves_unknown_tags_and_group_lengths_are_removed() -> None:
    ds = _dataset()
    ds.add_new(0x60000010, "US", 2)  # Overlay Rows
    ds.add_new(0x60000022, "LO", "overlay description with a name")
    ds.add_new(0x60003000, "OW", b"\x00\x01")
    ds.add_new(0x60021500, "LO", "overlay label")
    ds.add_new(0x50002500, "LO", "curve label")
    ds.add_new(0x00120099, "LO", "unknown public tag")
    ds.add_new(0x00080000, "UL", 0)
    out = deidentify(ds, uid_key=KEY)
    groups = {e.tag.group for e in out}
    assert not {g for g in groups if g & 0xFF00 in (0x5000, 0x6000)}
    assert 0x00120099 not in out and 0x00080000 not in out


def test_unlisted_names_dates_and_instance_uids_under_strict_rules() -> None:
    ds = _dataset()
    ds.SOPInstanceUIDOfConcatenationSource = "1.2.826.0.1.3680043.8.498.44"  # not in the table
    ds.ReferencedSeriesSequence = Sequence(
        [_item(ReferencedSOPClassUID=MR_IMAGE, SeriesInstanceUID=SERIES)]
    )
    ds.SecondaryReviewDate = "20240103"  # DA, TM and PN the 2024b table does not list
    ds.SecondaryReviewTime = "101010"
    ds.SecondaryReviewerName = "Reviewer^Rita"
    assert not {0x00140102, 0x00140103, 0x00140104} & set(profile_table.ATTRIBUTES)
    strict = deidentify(ds, uid_key=KEY)
    assert MAPPED.match(strict.SOPInstanceUIDOfConcatenationSource)
    assert strict.ReferencedSeriesSequence[0].ReferencedSOPClassUID == MR_IMAGE
    assert strict.SOPClassUID == MR_IMAGE
    assert strict.SecondaryReviewDate == "19000101" and strict.SecondaryReviewTime == "000000"
    assert strict.SecondaryReviewerName == "ANONYMIZED"
    basic = deidentify(ds, uid_key=KEY, options=DeidOptions(strict_unlisted=False))
    assert basic.SOPInstanceUIDOfConcatenationSource == ds.SOPInstanceUIDOfConcatenationSource
    assert basic.SecondaryReviewerName == "Reviewer^Rita"
    assert "LongitudinalTemporalInformationModified" not in basic


def test_input_is_not_modified_and_output_is_idempotent() -> None:
    ds = _dataset()
    ds.ContentSequence = Sequence([_item(TextValue="x", UID="1.2.3.4")])
    before = copy.deepcopy(ds)
    once = deidentify(ds, uid_key=KEY)
    assert ds == before and ds.file_meta == before.file_meta
    twice = deidentify(once, uid_key=KEY)
    assert _bytes(twice) == _bytes(once)


def test_markers_record_what_was_done() -> None:
    out = deidentify(_dataset(), uid_key=KEY)
    assert out.PatientIdentityRemoved == "YES"
    code = out.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert code.CodeMeaning == "Basic Application Confidentiality Profile"
    assert all(len(value) <= 64 for value in out.DeidentificationMethod)
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


def test_burned_in_annotation_is_refused_unless_allowed() -> None:
    ds = _dataset()
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(DeidentificationRefusedError, match="Burned In Annotation") as info:
        deidentify(ds, uid_key=KEY)
    assert isinstance(info.value, FedcodecError)
    report = DeidReport()
    allowed = DeidOptions(allow_burned_in_annotation=True)
    out = deidentify(ds, uid_key=KEY, options=allowed, report=report)
    assert out.BurnedInAnnotation == "YES" and report.warnings


def test_uid_mapping_is_keyed_consistent_and_recognises_itself() -> None:
    mapper = UidMapper(KEY)
    uid = "1.3.12.2.1107.5.2.32.35131.2014031012493950715786673"
    assert mapper.map_uid(uid) == UidMapper(KEY).map_uid(uid)
    assert mapper.map_uid(uid) != UidMapper(bytes(32)).map_uid(uid)
    assert mapper.map_uid(uid) != mapper.map_uid(uid + "1")
    mapped = mapper.map_uid(uid)
    assert MAPPED.match(mapped) and len(mapped) <= 64
    assert uuid.UUID(int=int(mapped[5:])).version == 8
    assert mapper.is_mapped(mapped) and mapper.map_uid(mapped) == mapped
    assert not UidMapper(bytes(32)).is_mapped(mapped)
    foreign = f"2.25.{uuid.uuid4().int}"
    assert not mapper.is_mapped(foreign) and mapper.map_uid(foreign) != foreign
    with pytest.raises(ValueError, match="at least 16 bytes"):
        UidMapper(b"short")


def test_patient_id_pseudonym_is_keyed_stable_and_idempotent() -> None:
    options = DeidOptions(pseudonymize_patient_id=True)
    first = deidentify(_dataset(), uid_key=KEY, options=options)
    second = _dataset(instance="1.2.826.0.1.3680043.8.498.2")
    again = deidentify(second, uid_key=KEY, options=options)
    assert first.PatientID == again.PatientID and first.PatientID.startswith("FCP-")
    assert "MRN-4711" not in first.PatientID and len(first.PatientID) <= 64
    assert deidentify(first, uid_key=KEY, options=options).PatientID == first.PatientID
    other = _dataset()
    other.PatientID = "MRN-4712"
    assert deidentify(other, uid_key=KEY, options=options).PatientID != first.PatientID


def test_series_headers_are_deidentified_consistently(tmp_path: Path) -> None:
    datasets = [_dataset(instance=f"1.2.826.0.1.3680043.8.498.{i}") for i in (1, 2)]
    volume = np.arange(8, dtype=np.uint16).reshape(2, 2, 2)
    series = Series(
        series_uid=SERIES,
        study_uid=STUDY,
        patient_id="MRN-4711",
        description="T1 for Jane Doe",
        modality="MR",
        volume=volume,
        bits_stored=12,
        signed=False,
        datasets=datasets,
        source_files=[tmp_path / "Doe_Jane" / "1.dcm", tmp_path / "Doe_Jane" / "2.dcm"],
        slice_sources=[(0, 0), (1, 0)],
    )
    report = DeidReport()
    out = deidentify_series(series, KEY, report=report)
    assert out.series_uid == out.datasets[0].SeriesInstanceUID == out.datasets[1].SeriesInstanceUID
    assert out.study_uid == out.datasets[1].StudyInstanceUID and MAPPED.match(out.study_uid)
    assert out.datasets[0].SOPInstanceUID != out.datasets[1].SOPInstanceUID
    assert out.patient_id == "" and out.description == "" and out.source_files == []
    assert np.shares_memory(out.volume, volume) and np.array_equal(out.volume, volume)
    assert series.series_uid == SERIES and series.datasets[0].PatientName == "Doe^Jane"
    assert report.datasets == 2
