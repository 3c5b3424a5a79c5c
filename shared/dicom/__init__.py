"""DICOM I/O: read a folder into series (volumes + every header), write a series back."""

from fedcodec.shared.dicom.lossy import LossyInfo
from fedcodec.shared.dicom.read import read_series
from fedcodec.shared.dicom.series import Series, SkippedFile
from fedcodec.shared.dicom.transfer_syntax import transfer_syntax_names
from fedcodec.shared.dicom.write import write_series

__all__ = [
    "LossyInfo",
    "Series",
    "SkippedFile",
    "read_series",
    "transfer_syntax_names",
    "write_series",
]
