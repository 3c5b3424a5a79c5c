"""The one function that maps a slice (or a whole series / header) to its privacy unit.

Sampling, per-unit clipping and accounting all group training data by this id, and every ε the
project prints names the unit it protects. Patient is the default: a patient's slices, series and
studies are one unit, so DP hides whether *the patient* took part. A header without PatientID
falls back to its StudyInstanceUID (a study never spans patients), then to its SeriesInstanceUID.

Ids are prefixed by the attribute that was used (``patient:``, ``study:`` ...), so a fallback is
visible, and they never leave the site (only counts and ε do).
"""

from __future__ import annotations

from typing import Any

from fedcodec.shared.errors import FedcodecError

PRIVACY_UNITS: tuple[str, ...] = ("patient", "study", "series", "slice")


def _text(value: Any) -> str:
    return str(value or "").strip()


def _ids(item: Any) -> tuple[str, str, str]:
    """(patient, study, series) ids of a :class:`Series` or a pydicom Dataset."""
    if hasattr(item, "patient_id") and hasattr(item, "study_uid"):
        return _text(item.patient_id), _text(item.study_uid), _text(item.key)
    get = getattr(item, "get", None)
    if get is None:
        raise FedcodecError(f"privacy unit: expected a Series or a DICOM dataset, not {type(item).__name__}")
    return _text(get("PatientID")), _text(get("StudyInstanceUID")), _text(get("SeriesInstanceUID"))


def privacy_unit(item: Any, unit: str = "patient", slice_index: int | None = None) -> str:
    """Id of the privacy unit ``item`` belongs to.

    ``item`` is a :class:`fedcodec.shared.dicom.Series` or a pydicom Dataset. ``unit`` is one of
    :data:`PRIVACY_UNITS`; ``slice`` needs ``slice_index`` (the slice within the series, or the
    frame of a multi-frame dataset).
    """
    if unit not in PRIVACY_UNITS:
        raise FedcodecError(f"unknown privacy unit {unit!r}; choose one of {', '.join(PRIVACY_UNITS)}")
    patient, study, series = _ids(item)
    chain = {"patient": (("patient", patient), ("study", study), ("series", series)),
             "study": (("study", study), ("series", series)),
             "series": (("series", series),),
             "slice": (("series", series),)}[unit]
    for name, value in chain:
        if value:
            if unit == "slice":
                if slice_index is None:
                    raise FedcodecError("privacy unit 'slice' needs the slice index")
                return f"slice:{value}/{int(slice_index)}"
            return f"{name}:{value}"
    raise FedcodecError(f"cannot find a privacy unit ({unit}): no PatientID, StudyInstanceUID or "
                        "SeriesInstanceUID")
