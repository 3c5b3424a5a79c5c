"""Refuse to upload a study whose DICOM headers were never de-identified.

``fedcodec deid`` marks every dataset it writes with PatientIdentityRemoved = YES and the
De-identification Method (0012,0063) (see ``shared/deid/basic_profile.py``); other tools that
follow PS3.15 set the same attributes. ``fedcodec store put`` checks every dataset of an
``.fcz`` container (its headers are kept bit for bit) or of a DICOM file (recognised by their
magic bytes, whatever the file name) for either mark and
refuses the upload otherwise, unless the user passes ``--allow-identified``: encryption keeps
the service from reading a study, but a study shared with another site must not carry names.
Files that are neither (an arbitrary blob) carry no DICOM headers and are not checked.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

from fedcodec.shared.container.layout import MAGIC
from fedcodec.shared.container.reader import read_container
from fedcodec.shared.errors import FedcodecError

DICOM_MAGIC_OFFSET = 128


def is_deidentified(dataset: pydicom.Dataset) -> bool:
    """True when the dataset says it was de-identified (either PS3.15 mark)."""
    removed = str(dataset.get("PatientIdentityRemoved", "") or "").strip().upper()
    return removed == "YES" or bool(dataset.get("DeidentificationMethod", None))


def _kind(path: Path) -> str:
    """``fcz``, ``dicom`` or ``other``, by the file's magic bytes (not its name)."""
    with open(path, "rb") as handle:
        start = handle.read(DICOM_MAGIC_OFFSET + 4)
    if start.startswith(MAGIC):
        return "fcz"
    return "dicom" if start[DICOM_MAGIC_OFFSET:] == b"DICM" else "other"


def identified_reason(path: Path) -> str | None:
    """Why ``path`` holds identified DICOM headers, or None when it is de-identified / not DICOM."""
    path = Path(path)
    if path.is_dir():
        raise FedcodecError(f"{path} is a folder: compress it into an .fcz first")
    if not path.is_file():
        raise FedcodecError(f"file not found: {path}")
    kind = _kind(path)
    if kind == "fcz":
        container = read_container(path)
        for number, entry in enumerate(container.series):
            datasets = container.datasets(number)
            bare = sum(not is_deidentified(ds) for ds in datasets)
            if bare:
                return (
                    f"series {number} ({entry.info.modality}, {len(datasets)} datasets) has "
                    f"{bare} dataset(s) without PatientIdentityRemoved=YES or "
                    "DeidentificationMethod"
                )
        return None
    if kind == "dicom":
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on bad files
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FedcodecError(f"cannot read DICOM file {path}: {reason}") from None
        if not is_deidentified(dataset):
            return "its header has no PatientIdentityRemoved=YES or DeidentificationMethod"
    return None


def refuse_identified(path: Path) -> None:
    """Raise a one-line error when ``path`` is an identified study (see module docstring)."""
    reason = identified_reason(path)
    if reason is not None:
        raise FedcodecError(
            f"refusing to upload {path}: not de-identified: {reason} (run `fedcodec deid` "
            "first, or pass --allow-identified)"
        )
