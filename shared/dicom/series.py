"""A series as the rest of fedcodec sees it: a volume of stored values plus its headers.

Readers fill it; codecs, the benchmark, the container and de-identification consume it. The volume
holds *stored* values (unused high bits masked, signed 12-bit sign-extended, no rescale applied),
so lossless means bit-exact against what the scanner wrote; RescaleSlope/Intercept are kept for
anyone who needs physical units.

Slice order (what :func:`fedcodec.shared.dicom.read_series` guarantees): ascending position along
the slice normal ``row x column`` of ImageOrientationPatient; a multi-volume series (fMRI, DWI:
several frames at one position) is ordered volume by volume, i.e. by ``(volume index, position)``,
where a frame's volume index is its rank among the frames at the same position sorted by
``(AcquisitionNumber, TemporalPositionIndex/Identifier, acquisition date-time, InstanceNumber,
file path, frame)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom


@dataclass
class Series:
    """One DICOM series: ``volume[i]`` is the i-th slice in spatial (then temporal) order."""

    series_uid: str
    study_uid: str
    patient_id: str
    description: str
    modality: str
    volume: np.ndarray
    """(slices, rows, cols) stored values: uint8/uint16, or int16 when ``signed``."""
    bits_stored: int
    signed: bool
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    datasets: list[pydicom.Dataset] = field(default_factory=list)
    """Every header, pixel data removed, one per source file (a multi-frame file is one)."""
    source_files: list[Path] = field(default_factory=list)
    slice_sources: list[tuple[int, int]] = field(default_factory=list)
    """For each slice: (index into ``datasets``, frame or mosaic-tile index within it)."""
    part: int = 0
    """0 when the SeriesInstanceUID maps to this one Series; 1, 2, ... when the reader had to split
    the UID because its images differ in shape, orientation, pixel format or Series Number (the
    edge12 files share one UID across Series Numbers 2, 3 and 4)."""
    mosaic_tiles: list[int] = field(default_factory=list)
    """For each dataset: the number of Siemens mosaic tiles it was split into (0 = not split)."""
    slice_rescale: list[tuple[float, float]] = field(default_factory=list)
    """For each slice: (RescaleSlope, RescaleIntercept); they may differ between files."""
    bits_allocated: int = 16
    """Bits Allocated of the source images (8 or 16); the writer keeps it."""
    positions_per_volume: int | None = None
    """Slice positions per volume from the headers (``slice_order.positions_per_volume``): the
    series holds ``slices / positions_per_volume`` complete volumes. None when the headers do not
    say (no positions, incomplete volumes, or not read from DICOM)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.volume.shape)  # type: ignore[return-value]

    @property
    def key(self) -> str:
        """Unique name of this Series: the UID, plus ``#part`` when the UID was split."""
        return self.series_uid if self.part == 0 else f"{self.series_uid}#{self.part}"

    @property
    def slice_ids(self) -> list[str]:
        """Stable names for the slices, used as ``slice_id`` in benchmark records."""
        return [f"{self.key}/{i}" for i in range(self.volume.shape[0])]


@dataclass
class SkippedFile:
    """A file the reader passed over, and why (one line, shown to the user)."""

    path: Path
    reason: str
    image: bool = False
    """The file holds an image (pixel data, or a DICOM header too damaged to tell) that could not
    be read: an archive without it loses data, so ``fedcodec compress`` stops unless told to
    skip such files. Files that are not images (reports, presentation states, DICOMDIR, other
    files) are skipped quietly."""
