"""De-identify a :class:`Series` from ``read_series``: every header, one key, pixels untouched."""

from __future__ import annotations

import dataclasses

from fedcodec.shared.deid.basic_profile import deidentify
from fedcodec.shared.deid.options import DeidOptions
from fedcodec.shared.deid.report import DeidReport
from fedcodec.shared.deid.uid_mapping import UidMapper
from fedcodec.shared.dicom.series import Series


def deidentify_series(
    series: Series,
    uid_key: bytes | UidMapper,
    *,
    options: DeidOptions = DeidOptions(),
    report: DeidReport | None = None,
) -> Series:
    """A new Series whose headers are de-identified consistently; ``series`` is not modified.

    Every UID goes through the same keyed mapping, so the new ``series_uid``/``study_uid`` equal
    the Series/Study Instance UIDs written into the new headers, and two series of one study still
    share a study UID. ``volume`` is the same pixel buffer (a view, not a copy: pixels are never
    de-identified). ``source_files`` is emptied because file and folder names often carry patient
    names; ``slice_sources`` still indexes ``datasets``.
    """
    mapper = uid_key if isinstance(uid_key, UidMapper) else UidMapper(uid_key)
    datasets = [
        deidentify(ds, uid_key=mapper, options=options, report=report) for ds in series.datasets
    ]
    first = datasets[0] if datasets else None
    if first is not None:
        patient_id = str(first.get("PatientID", "") or "")
        description = str(first.get("SeriesDescription", "") or "")
    elif options.pseudonymize_patient_id and series.patient_id:
        patient_id, description = mapper.pseudonym(series.patient_id), ""
    else:
        patient_id, description = "", ""
    return dataclasses.replace(
        series,
        series_uid=mapper.map_uid(series.series_uid) if series.series_uid else "",
        study_uid=mapper.map_uid(series.study_uid) if series.study_uid else "",
        patient_id=patient_id,
        description=description,
        volume=series.volume.view(),
        datasets=datasets,
        source_files=[],
        slice_sources=list(series.slice_sources),
    )
