"""Which slices form one series, and in what order they go.

Grouping: slices share a series when they share SeriesInstanceUID, Series Number, pixel format
and matrix, and their orientations agree within ``ORIENTATION_TOLERANCE``; anything else is split
into parts (a Series holds one volume of one pixel type).

Order (deterministic, documented in :mod:`fedcodec.shared.dicom.series`): positions are projected
on the slice normal and positions closer than ``POSITION_TOLERANCE_MM`` count as one. If every
position holds one slice, slices go in ascending position. Otherwise the series is multi-volume
(fMRI, DWI): a slice's volume index is its rank among the slices at its position, ranked by the
temporal key (AcquisitionNumber, temporal position, acquisition date-time, InstanceNumber, file
path, frame), and slices go in ``(volume index, position)`` order.

Volume layout (:func:`positions_per_volume`): when every slice has a position and orientation and
every position holds the same number of slices, the series is that many complete volumes of
``P`` positions, so slice ``i - P`` is the same position one volume earlier. Inter-slice coders
take that period from the headers instead of guessing it from the pixels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedcodec.shared.dicom.frame_geometry import FrameGeometry, slice_normal

ORIENTATION_TOLERANCE = 1e-3
POSITION_TOLERANCE_MM = 1e-2


@dataclass
class SliceRecord:
    """One 2-D slice found by the reader, before it is placed in a volume."""

    file_index: int
    """Index of the source file in the reader's list of decoded files."""
    frame: int
    """Frame or mosaic-tile index within that file."""
    path: Path
    group: Hashable
    """Exact grouping key (UID, Series Number, pixel format, matrix)."""
    geometry: FrameGeometry

    def temporal_key(self) -> tuple:
        return (*self.geometry.temporal, str(self.path), self.frame)


def split_by_orientation(records: list[SliceRecord]) -> list[list[SliceRecord]]:
    """Cluster records whose ImageOrientationPatient agree within the tolerance (None apart)."""
    clusters: list[tuple[np.ndarray | None, list[SliceRecord]]] = []
    for record in records:
        orientation = record.geometry.orientation
        for reference, members in clusters:
            same = (
                reference is None and orientation is None
                or reference is not None and orientation is not None
                and float(np.max(np.abs(reference - orientation))) <= ORIENTATION_TOLERANCE
            )
            if same:
                members.append(record)
                break
        else:
            clusters.append((orientation, [record]))
    return [members for _, members in clusters]


def _position_bins(offsets: list[float]) -> list[int]:
    """Bin index per offset; offsets within the tolerance of their sorted neighbour share a bin."""
    order = sorted(range(len(offsets)), key=lambda i: offsets[i])
    bins = [0] * len(offsets)
    current, previous = 0, None
    for i in order:
        if previous is not None and offsets[i] - previous > POSITION_TOLERANCE_MM:
            current += 1
        bins[i] = current
        previous = offsets[i]
    return bins


def _normal_offsets(records: list[SliceRecord]) -> tuple[list[float], bool]:
    """Each record's position along the slice normal (0.0 when unknown), and whether all known."""
    orientations = (r.geometry.orientation for r in records)
    reference = next((o for o in orientations if o is not None), None)
    normal = slice_normal(reference) if reference is not None else None
    known = normal is not None and all(r.geometry.position is not None for r in records)
    offsets = [
        float(np.dot(r.geometry.position, normal))
        if normal is not None and r.geometry.position is not None
        else 0.0
        for r in records
    ]
    return offsets, known


def positions_per_volume(records: list[SliceRecord]) -> int | None:
    """Slice positions per volume when the headers say the series is complete volumes, else None.

    None when a slice lacks its position or orientation, or when positions hold different numbers
    of slices (an interrupted acquisition, a localiser stack): then nobody should trust a period.
    """
    offsets, known = _normal_offsets(records)
    if not known or not records:
        return None
    counts = np.bincount(_position_bins(offsets))
    return int(counts.size) if np.all(counts == counts[0]) else None


def order_slices(records: list[SliceRecord]) -> list[SliceRecord]:
    """Records of one group (one orientation) in volume order; see the module docstring."""
    offsets, _ = _normal_offsets(records)
    bins = _position_bins(offsets)
    members: dict[int, list[int]] = defaultdict(list)
    for i, b in enumerate(bins):
        members[b].append(i)
    volume = [0] * len(records)
    for indices in members.values():
        for rank, i in enumerate(sorted(indices, key=lambda i: records[i].temporal_key())):
            volume[i] = rank
    order = sorted(
        range(len(records)), key=lambda i: (volume[i], bins[i], records[i].temporal_key())
    )
    return [records[i] for i in order]
