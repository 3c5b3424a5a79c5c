"""Marking an image as lossy, the way PS3.3 C.7.6.1.1.5 asks.

Once pixel values differ from what the scanner wrote, the image is a new, derived instance:
Lossy Image Compression (0028,2110) = "01", the ratio and method of *every* lossy step so far
(0028,2112 / 0028,2114, values appended when the source was already lossy), Image Type value 1
DERIVED, a Derivation Description and Code, a Source Image Sequence pointing at the original
instance, and new SOP Instance / Series Instance UIDs (set by the writer).

An enhanced MR image that becomes DERIVED must also drop what only an ORIGINAL (or MIXED) image
may carry: the attributes of the MR Pulse Sequence and Bulk Motion Synchronization modules
(PS3.3 C.8.13.4, C.7.6.18.3; Type 1C "required if Image Type value 1 is ORIGINAL or MIXED",
which David Clunie's ``dciodvfy`` reads as "absent otherwise"). Classic MR keeps them: there
MR Acquisition Type and the like belong to the MR Image module, for any Image Type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from fedcodec.shared.dicom.header_copy import own_element, replace_element
from fedcodec.shared.errors import FedcodecError

_CS = re.compile(r"^[A-Z0-9_ ]{1,16}$")
ENHANCED_MR_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image Storage
})
ORIGINAL_ONLY_ENHANCED_MR = (
    # MR Pulse Sequence module (C.8.13.4)
    "PulseSequenceName", "MRAcquisitionType", "EchoPulseSequence", "MultipleSpinEcho",
    "MultiPlanarExcitation", "PhaseContrast", "VelocityEncodingAcquisitionSequence",
    "TimeOfFlightContrast", "ArterialSpinLabelingContrast", "SteadyStatePulseSequence",
    "EchoPlanarPulseSequence", "SaturationRecovery", "SpectrallySelectedSuppression",
    "OversamplingPhase", "GeometryOfKSpaceTraversal", "RectilinearPhaseEncodeReordering",
    "SegmentedKSpaceTraversal", "CoverageOfKSpace", "NumberOfKSpaceTrajectories",
    # Bulk Motion Synchronization module (C.7.6.18.3)
    "BulkMotionCompensationTechnique", "BulkMotionSignalSource",
)
"""Top-level attributes an enhanced MR image keeps only while Image Type value 1 is ORIGINAL."""
_DESCRIPTION_LIMIT = 1024  # ST


@dataclass(frozen=True)
class LossyInfo:
    """A lossy step already applied to the volume being written (e.g. a neural reconstruction).

    ``method`` goes to Lossy Image Compression Method (0028,2114): a DICOM defined term such as
    ``ISO_14495_1`` (JPEG-LS near-lossless), ``ISO_15444_1`` (JPEG 2000), ``ISO_15444_15``
    (HTJ2K), ``ISO_18181_1`` (JPEG XL), or an uppercase code of at most 16 characters for a
    method DICOM does not name (e.g. ``FEDCODEC_NEURAL``). ``ratio`` is the compression ratio
    that step achieved (uncompressed bytes / compressed bytes).
    """

    method: str
    ratio: float
    description: str = ""

    def __post_init__(self) -> None:
        if not _CS.match(self.method):
            raise FedcodecError(
                f"lossy method {self.method!r} is not a DICOM code string (A-Z 0-9 _ , <= 16)"
            )
        if not self.ratio > 0:
            raise FedcodecError(f"lossy compression ratio must be positive, got {self.ratio}")


def _values(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str | float | int):
        return [str(value)]
    return [str(v) for v in value]


def _ratio_text(ratio: float) -> str:
    text = f"{ratio:.4f}".rstrip("0").rstrip(".")
    return text[:16]


def mark_lossy(ds: Dataset, steps: list[LossyInfo], source: tuple[str, str]) -> None:
    """Record ``steps`` (in order) on ``ds``; ``source`` is (SOP Class UID, SOP Instance UID).

    Elements are replaced, never mutated, so ``ds`` may share elements with the source header
    (see :mod:`fedcodec.shared.dicom.header_copy`).
    """
    already = str(ds.get("LossyImageCompression", "")) == "01"
    ratios = _values(ds, "LossyImageCompressionRatio") if already else []
    methods = _values(ds, "LossyImageCompressionMethod") if already else []
    ratios += [_ratio_text(step.ratio) for step in steps]
    methods += [step.method for step in steps]
    replace_element(ds, "LossyImageCompression", "01")
    replace_element(ds, "LossyImageCompressionRatio", ratios)
    replace_element(ds, "LossyImageCompressionMethod", methods)

    image_type = _values(ds, "ImageType")
    if image_type:
        replace_element(ds, "ImageType", ["DERIVED", *image_type[1:]])
    if str(ds.get("SOPClassUID", "")) in ENHANCED_MR_CLASSES:
        for keyword in ORIGINAL_ONLY_ENHANCED_MR:
            if keyword in ds:
                del ds[keyword]  # removes the copy's entry only; a shared element is untouched
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        if not ds.get(group):
            continue
        for item in own_element(ds, group):
            for frame_type in item.get("MRImageFrameTypeSequence") or []:
                values = _values(frame_type, "FrameType")
                if values:
                    frame_type.FrameType = ["DERIVED", *values[1:]]

    notes = [
        step.description or f"lossy compression {step.method} ratio {_ratio_text(step.ratio)}:1"
        for step in steps
    ]
    previous = str(ds.get("DerivationDescription") or "")
    text = "; ".join([previous, *notes] if previous else notes)[:_DESCRIPTION_LIMIT]
    replace_element(ds, "DerivationDescription", text)

    code = Dataset()
    code.CodeValue = "113040"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Lossy Compression"
    codes = list(ds.get("DerivationCodeSequence") or [])
    if not any(str(c.get("CodeValue")) == "113040" for c in codes):
        replace_element(ds, "DerivationCodeSequence", Sequence([*codes, code]))

    reference = Dataset()
    reference.ReferencedSOPClassUID = source[0]
    reference.ReferencedSOPInstanceUID = source[1]
    replace_element(
        ds, "SourceImageSequence", Sequence([*(ds.get("SourceImageSequence") or []), reference])
    )


def is_lossy(ds: pydicom.Dataset) -> bool:
    return str(ds.get("LossyImageCompression", "")) == "01"
