"""The series a training run reads, and its held-out split by series.

Series are read with the product's DICOM reader (:func:`fedcodec.shared.dicom.read_series`),
Siemens mosaics split into their tiles as the codec codes them, signed values shifted to the
unsigned view the codec sees. The split is by SeriesInstanceUID (parts of one UID stay on one
side), so no slice of a held-out series, nor its neighbours, is ever trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedcodec.shared.dicom import read_series
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.pixels import to_unsigned


@dataclass
class TrainingSeries:
    """One series as the codec sees it."""

    name: str
    """``relative/folder/SeriesInstanceUID[#part]``: unique and readable."""
    series_uid: str
    volume: np.ndarray
    """(slices, rows, cols) uint8/uint16."""
    bits: int

    @property
    def pair(self) -> tuple[np.ndarray, int]:
        return self.volume, self.bits


def load_training_series(dicom_dir: Path, split_mosaics: bool = True,
                         progress: bool = False) -> tuple[list[TrainingSeries], int]:
    """Every series under ``dicom_dir`` and the number of files passed over."""
    dicom_dir = Path(dicom_dir)
    if not dicom_dir.is_dir():
        raise FedcodecError(f"not a folder: {dicom_dir}")
    series, skipped = read_series(dicom_dir, split_mosaics=split_mosaics, progress=progress)
    out = []
    for s in series:
        source = Path(s.source_files[0]).parent if s.source_files else dicom_dir
        folder = source.relative_to(dicom_dir).as_posix() if source != dicom_dir else "."
        try:
            volume, _ = to_unsigned(s.volume, s.bits_stored, s.signed)
        except ValueError as exc:
            raise FedcodecError(f"{s.key}: {exc}") from None
        out.append(TrainingSeries(f"{folder}/{s.key}", s.series_uid, volume, s.bits_stored))
    return out, len(skipped)


def split_by_series(series: list[TrainingSeries], holdout: float,
                    seed: int) -> tuple[list[TrainingSeries], list[TrainingSeries]]:
    """(train, held out): ``holdout`` of the series UIDs (rounded, at least one when > 0 and at
    least one left to train on), drawn by ``seed``; each side keeps the reader's order."""
    if not 0.0 <= holdout < 1.0:
        raise FedcodecError(f"--holdout must be in [0, 1), not {holdout}")
    uids = sorted({s.series_uid for s in series})
    n_held = 0
    if holdout > 0:
        if len(uids) < 2:
            raise FedcodecError(f"a held-out split needs at least 2 series, found {len(uids)} "
                                "(use --holdout 0 to train on everything)")
        n_held = min(len(uids) - 1, max(1, round(holdout * len(uids))))
    order = np.random.default_rng(seed).permutation(len(uids))
    held = {uids[i] for i in order[:n_held]}
    return ([s for s in series if s.series_uid not in held],
            [s for s in series if s.series_uid in held])


def split_record(train: list[TrainingSeries], held: list[TrainingSeries], holdout: float,
                 seed: int) -> dict:
    """What ``split.json`` holds: per side, the series (name, UID, slices)."""
    def side(items: list[TrainingSeries]) -> list[dict]:
        return [{"name": s.name, "series_uid": s.series_uid, "slices": int(s.volume.shape[0]),
                 "shape": list(s.volume.shape[1:])} for s in items]
    return {"holdout": holdout, "seed": seed, "by": "SeriesInstanceUID",
            "train": side(train), "heldout": side(held)}
