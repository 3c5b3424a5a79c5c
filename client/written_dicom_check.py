"""Prove that the DICOM files ``decompress`` wrote read back as what the container decoded.

Writing DICOM is a second encoder: header values from the container are re-serialised by
pydicom, pixel data re-packed. The audit found decompress exiting 0 on DICOM that dcmtk could not
parse. So before the output folder is renamed into place, every series folder is read back with
the same reader ``compress`` uses, every element is parsed, and the stored values must equal the
decoded volume exactly. Any difference is a one-line error and nothing is left behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedcodec.shared.dicom import read_series
from fedcodec.shared.errors import CorruptDataError, FedcodecError


def check_written_series(folder: Path, expected: np.ndarray, index: int) -> None:
    """Re-read ``folder`` (the files written for series ``index``); it must hold ``expected``."""
    where = f"series {index}: the DICOM written"
    try:
        found, skipped = read_series(folder)
        for series in found:
            for dataset in series.datasets:
                for _ in dataset.iterall():  # parse every element, not only those read so far
                    pass
    except FedcodecError as exc:
        raise CorruptDataError(f"{where} does not read back: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on malformed values
        raise CorruptDataError(f"{where} does not parse: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    if skipped:
        raise CorruptDataError(f"{where} does not read back: {skipped[0].path.name}: "
                               f"{skipped[0].reason}")
    if len(found) != 1:
        raise CorruptDataError(f"{where} reads back as {len(found)} series, not 1")
    volume = found[0].volume
    if volume.shape != expected.shape:
        raise CorruptDataError(
            f"{where} reads back with shape {volume.shape}, the container decoded {expected.shape}"
        )
    if not np.array_equal(volume, expected):
        wrong = int(np.count_nonzero(volume != expected))
        raise CorruptDataError(
            f"{where} reads back with {wrong} stored values that differ from the decoded ones"
        )
