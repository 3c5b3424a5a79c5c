"""privacy_unit: patient by default, study then series fallback, slice ids, clear errors."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from conftest import require_shared_data

from fedcodec.shared.dicom import Series, read_series
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.privacy import PRIVACY_UNITS, privacy_unit


def _series(patient: str, study: str, uid: str = "1.2.3", part: int = 0) -> Series:
    return Series(uid, study, patient, "t1", "MR", np.zeros((3, 4, 4), np.uint16), 12, False,
                  part=part)


def test_units_of_a_series_and_their_fallbacks():
    s = _series("P1", "1.2.840.9")
    assert privacy_unit(s) == "patient:P1"
    assert privacy_unit(s, "study") == "study:1.2.840.9"
    assert privacy_unit(s, "series") == "series:1.2.3"
    assert privacy_unit(s, "slice", slice_index=2) == "slice:1.2.3/2"
    assert privacy_unit(_series("  ", "1.2.840.9")) == "study:1.2.840.9"
    assert privacy_unit(_series("", "")) == "series:1.2.3"
    assert privacy_unit(_series("P1", "9", part=2), "series") == "series:1.2.3#2"


def test_units_of_a_dataset():
    ds = pydicom.Dataset()
    ds.StudyInstanceUID = "1.2.5"
    ds.SeriesInstanceUID = "1.2.6"
    assert privacy_unit(ds) == "study:1.2.5"
    ds.PatientID = "ANON7"
    assert privacy_unit(ds) == "patient:ANON7"
    assert privacy_unit(ds, "slice", slice_index=0) == "slice:1.2.6/0"


def test_bad_unit_requests_fail_in_one_line():
    s = _series("P1", "1")
    with pytest.raises(FedcodecError, match="unknown privacy unit 'voxel'"):
        privacy_unit(s, "voxel")
    with pytest.raises(FedcodecError, match="needs the slice index"):
        privacy_unit(s, "slice")
    with pytest.raises(FedcodecError, match="expected a Series or a DICOM dataset"):
        privacy_unit(42)
    with pytest.raises(FedcodecError, match="cannot find a privacy unit"):
        privacy_unit(pydicom.Dataset())
    assert PRIVACY_UNITS == ("patient", "study", "series", "slice")


@pytest.mark.shared_data
def test_real_sites_group_series_by_patient():
    """Every vendor folder has one or two patients: patient-level DP there is very expensive."""
    series, _ = read_series(require_shared_data("dicom", "siemens"))
    patients = {privacy_unit(s) for s in series}
    studies = {privacy_unit(s, "study") for s in series}
    assert len(series) == 28 and len(patients) == 2 and len(studies) == 4
    assert all(p.startswith("patient:") for p in patients)
