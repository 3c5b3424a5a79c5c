"""Seed inputs for the fuzz campaign: a small synthetic MR study and containers made from it.

The study is written here rather than read from ``../shared/data`` so the suite's campaign runs
anywhere in a second; it carries the identifying values (name, ID, dates, a PatientID repeated in
Image Comments) that the de-identification oracle looks for in ``deid`` output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

PATIENT_NAME = "FUZZ^PATIENT^SEED"
PATIENT_ID = "FZ-8675309"
IDENTIFYING_VALUES = (PATIENT_NAME.encode(), PATIENT_ID.encode())
"""What must never appear in ``deid`` output, whatever the mutation did to the input."""

CONTAINER_CODECS = ("jpegls", "jpegls:tau=2", "j2k:ratio=8", "htj2k", "zstd", "jxl")
"""One seed container per codec family the CLI writes (lossless, near-lossless, lossy)."""

_ROOT = "1.2.826.0.1.3680043.8.498.7777"


@dataclass(frozen=True)
class SeriesShape:
    """A synthetic series: slices x rows x cols, bits stored, signed or not."""

    slices: int
    rows: int
    cols: int
    bits: int
    signed: bool


SEED_SERIES = (SeriesShape(3, 24, 20, 12, False), SeriesShape(2, 16, 18, 16, True))


def _dataset(shape: SeriesShape, series: int, index: int, values: np.ndarray) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = f"{_ROOT}.{series + 1}.{index + 1}"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19610704"
    ds.StudyDate = "20240102"
    ds.InstitutionName = "Fuzz General Hospital"
    ds.ImageComments = f"follow-up of {PATIENT_ID}"
    ds.Modality = "MR"
    ds.StudyInstanceUID = f"{_ROOT}.0"
    ds.SeriesInstanceUID = f"{_ROOT}.{series + 1}"
    ds.SeriesNumber = series + 1
    ds.SeriesDescription = f"fuzz series {series + 1}"
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.Rows, ds.Columns = shape.rows, shape.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = shape.bits
    ds.HighBit = shape.bits - 1
    ds.PixelRepresentation = int(shape.signed)
    ds.PixelData = values.astype("<i2" if shape.signed else "<u2").tobytes()
    return ds


def write_seed_study(folder: Path, *, seed: int = 0) -> list[Path]:
    """Write the synthetic study (one file per slice) into ``folder``; return the files."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for series, shape in enumerate(SEED_SERIES):
        y, x = np.mgrid[0 : shape.rows, 0 : shape.cols]
        for index in range(shape.slices):
            smooth = (x * 37 + y * 11 + 97 * index) % (1 << min(shape.bits, 12))
            noise = rng.integers(0, 16, smooth.shape)
            values = smooth + noise
            if shape.signed:
                values = values - (1 << 11)
            path = folder / f"s{series + 1}_{index + 1:02d}.dcm"
            dcmwrite(path, _dataset(shape, series, index, values), enforce_file_format=True)
            files.append(path)
    return files


def write_seed_containers(study: Path, out: Path) -> dict[str, Path]:
    """Compress ``study`` once per codec of :data:`CONTAINER_CODECS`; ``{spec: path}``."""
    from fedcodec.client.compression import compress_study

    out.mkdir(parents=True, exist_ok=True)
    made = {}
    for spec in CONTAINER_CODECS:
        name = spec.replace(":", "_").replace("=", "")
        path = out / f"{name}.fcz"
        mode = "near-lossless" if "tau=" in spec else "lossy" if "ratio=" in spec else "lossless"
        tau = int(spec.split("tau=")[1]) if "tau=" in spec else 0
        compress_study(study, path, mode=mode, tau=tau, codec=spec, progress=False)
        made[spec] = path
    return made
