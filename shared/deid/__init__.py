"""De-identification before anything leaves a site: DICOM PS3.15 Basic Application Level
Confidentiality Profile, keyed UID replacement, all-or-nothing file export. The UID key is the
site keyring's de-identification key (``SiteKeyring.deid_key_bytes``); nothing here reads key
files.

See ``docs/deidentification.md`` for the interpretation choices.
"""

from fedcodec.shared.deid.basic_profile import DeidentificationRefusedError, deidentify
from fedcodec.shared.deid.file_deidentification import (
    DeidFolderResult,
    NotDicomError,
    deidentify_file,
    deidentify_folder,
    read_dicom_file,
)
from fedcodec.shared.deid.options import DeidOptions
from fedcodec.shared.deid.report import DeidReport
from fedcodec.shared.deid.series_deidentification import deidentify_series
from fedcodec.shared.deid.uid_mapping import UidMapper

__all__ = [
    "DeidFolderResult",
    "DeidOptions",
    "DeidReport",
    "DeidentificationRefusedError",
    "NotDicomError",
    "UidMapper",
    "deidentify",
    "deidentify_file",
    "deidentify_folder",
    "deidentify_series",
    "read_dicom_file",
]
