"""Where each frame (or mosaic tile) of a DICOM image lies, and when it was acquired.

Classic images carry ImagePositionPatient/ImageOrientationPatient at the top level; enhanced
multi-frame images carry them per frame in the functional groups (per-frame first, then shared).
A mosaic's ImagePositionPatient is the corner of the whole mosaic, so tile positions are
recomputed the way Siemens defines them: the first tile's corner is the mosaic corner moved by
half the unused in-plane extent, and tile ``k`` lies ``k * spacing`` along the CSA
SliceNormalVector.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pydicom

from fedcodec.shared.dicom.mosaic import MosaicLayout
from fedcodec.shared.dicom.siemens_csa import csa_slice_normal


@dataclass(frozen=True)
class FrameGeometry:
    """Position, orientation, time and rescale of one frame or tile."""

    position: np.ndarray | None
    """ImagePositionPatient (mm) of the frame's first pixel, or None if the file has none."""
    orientation: np.ndarray | None
    """ImageOrientationPatient: row direction cosines then column direction cosines."""
    temporal: tuple[float, ...]
    """Sort key for "which volume": AcquisitionNumber, temporal position, date-time, instance."""
    rescale: tuple[float, float]


def _floats(value: object, count: int) -> np.ndarray | None:
    try:
        array = np.array([float(v) for v in value], dtype=float)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return array if array.shape == (count,) and np.all(np.isfinite(array)) else None


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1.0


def _seconds(date: object, time: object) -> float:
    """DA + TM (or a DT split in two) as seconds since year 1; -1 when absent or unparsable."""
    digits = "".join(ch for ch in str(time or "") if ch.isdigit() or ch == ".")
    if not digits:
        return -1.0
    try:
        clock = int(digits[0:2]) * 3600 + int(digits[2:4] or 0) * 60 + float(digits[4:] or 0)
    except ValueError:
        return -1.0
    day = 0
    text = "".join(ch for ch in str(date or "") if ch.isdigit())
    if len(text) >= 8:
        try:
            day = dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8])).toordinal()
        except ValueError:
            day = 0
    return day * 86400.0 + clock


def _datetime_seconds(value: object) -> float:
    text = str(value or "").split("+")[0].split("-")[0] if value else ""
    return _seconds(text[:8], text[8:]) if len(text) > 8 else -1.0


def _rescale(item: pydicom.Dataset | None) -> tuple[float, float] | None:
    if item is None or item.get("RescaleSlope") is None:
        return None
    try:
        return float(item.RescaleSlope), float(item.get("RescaleIntercept") or 0.0)
    except (TypeError, ValueError):
        return None


def _first(seq_owner: pydicom.Dataset | None, keyword: str) -> pydicom.Dataset | None:
    if seq_owner is None:
        return None
    seq = seq_owner.get(keyword)
    return seq[0] if seq else None


def _file_temporal(ds: pydicom.Dataset) -> tuple[float, float, float, float]:
    acquired = ds.get("AcquisitionDateTime")
    seconds = _datetime_seconds(acquired) if acquired else _seconds(
        ds.get("AcquisitionDate") or ds.get("SeriesDate"), ds.get("AcquisitionTime")
    )
    return (
        _number(ds.get("AcquisitionNumber")),
        _number(ds.get("TemporalPositionIdentifier")),
        seconds,
        _number(ds.get("InstanceNumber")),
    )


def frame_geometries(ds: pydicom.Dataset, frames: int) -> list[FrameGeometry]:
    """One FrameGeometry per frame of ``ds`` (classic or enhanced multi-frame)."""
    position = _floats(ds.get("ImagePositionPatient"), 3)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    rescale = _rescale(ds) or (1.0, 0.0)
    temporal = _file_temporal(ds)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    if not per_frame and shared is None:
        return [FrameGeometry(position, orientation, temporal, rescale) for _ in range(frames)]
    result = []
    for index in range(frames):
        item = per_frame[index] if per_frame and index < len(per_frame) else None
        pos, ori, scale = position, orientation, rescale
        for group in (shared, item):  # per-frame values override shared ones
            plane = _first(group, "PlanePositionSequence")
            found = _floats(getattr(plane, "ImagePositionPatient", None), 3)
            pos = found if found is not None else pos
            plane = _first(group, "PlaneOrientationSequence")
            found = _floats(getattr(plane, "ImageOrientationPatient", None), 6)
            ori = found if found is not None else ori
            scale = _rescale(_first(group, "PixelValueTransformationSequence")) or scale
        content = _first(item, "FrameContentSequence")
        frame_temporal = temporal
        if content is not None:
            frame_temporal = (
                temporal[0],
                _number(content.get("TemporalPositionIndex")),
                _datetime_seconds(content.get("FrameAcquisitionDateTime")),
                temporal[3],
            )
        result.append(FrameGeometry(pos, ori, frame_temporal, scale))
    return result


def _rest(geometry: FrameGeometry) -> tuple:
    return geometry.orientation, geometry.temporal, geometry.rescale


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """Unit normal ``row x column`` of an ImageOrientationPatient."""
    normal = np.cross(orientation[:3], orientation[3:])
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else np.array([0.0, 0.0, 1.0])


def tile_geometries(
    ds: pydicom.Dataset, mosaic: FrameGeometry, layout: MosaicLayout, csa: dict[str, list[str]]
) -> list[FrameGeometry]:
    """Geometry of each mosaic tile from the mosaic's geometry and the CSA slice normal."""
    if mosaic.position is None or mosaic.orientation is None:
        return [mosaic] * layout.tiles
    spacing = _floats(ds.get("PixelSpacing"), 2)
    row_mm, col_mm = (spacing[0], spacing[1]) if spacing is not None else (1.0, 1.0)
    row_dir, col_dir = mosaic.orientation[:3], mosaic.orientation[3:]
    corner = (
        mosaic.position
        + row_dir * col_mm * (layout.grid - 1) * layout.tile_columns / 2.0
        + col_dir * row_mm * (layout.grid - 1) * layout.tile_rows / 2.0
    )
    normal = csa_slice_normal(csa)
    if normal is None:
        normal = slice_normal(mosaic.orientation)
    step = _number(ds.get("SpacingBetweenSlices"))
    if step <= 0:
        step = _number(ds.get("SliceThickness"))
    step = step if step > 0 else 1.0
    return [
        FrameGeometry(corner + k * step * normal, *_rest(mosaic))
        for k in range(layout.tiles)
    ]
