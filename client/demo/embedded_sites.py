"""The demo's hospitals and its study, made from the MRI that ships with the dependencies.

Three simulated sites each get one embedded acquisition as a DICOM folder (a site reads DICOM,
so NIfTI volumes from dipy are written as single-frame MR images with pydicom, stored values
unchanged). The study the demo compresses, encrypts, stores and analyses is pydicom-data's
multi-frame ``emri_small.dcm`` (10 frames, 64x64), copied with its original (test-file)
identity and then de-identified like a site would before anything leaves it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from fedcodec.shared.demo_data import demo_paths
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.sources import SliceStack, read_stacks
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


@dataclass(frozen=True)
class EmbeddedSite:
    """One simulated hospital: its name and the embedded file that is its data."""

    name: str
    package: str
    relative_path: str
    description: str


DEMO_SITES = (
    EmbeddedSite("site-a", "dipy", "data/files/S0_10slices.nii.gz", "dipy S0_10slices (b=0 DWI)"),
    EmbeddedSite("site-b", "dipy", "data/files/aniso_vox.nii.gz", "dipy aniso_vox"),
    EmbeddedSite("site-c", "data_store", "data/emri_small.dcm", "pydicom-data emri_small"),
)
STUDY_SOURCE = ("data_store", "data/emri_small.dcm")
"""The demo study: a 10-frame MR series with a (fake) patient identity in its header."""


def embedded_file(package: str, relative_path: str) -> Path:
    """Absolute path of an embedded file, or a one-line error naming the missing package."""
    for source, path in demo_paths():
        if (source.package, source.relative_path) == (package, relative_path):
            return path
    raise FedcodecError(f"embedded MRI {relative_path} not found: is {package} installed?")


def embedded_stack(package: str, relative_path: str) -> SliceStack:
    stacks, _ = read_stacks(embedded_file(package, relative_path))
    if not stacks:
        raise FedcodecError(f"no slices in embedded file {relative_path}")
    return stacks[0]


def write_stack_as_dicom(
    stack: SliceStack, folder: Path, *, patient_id: str, description: str, max_slices: int | None
) -> list[Path]:
    """Write ``stack`` as single-frame MR DICOM files (stored values kept exactly)."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = stack.volume[:max_slices] if max_slices else stack.volume
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    today = dt.date.today().strftime("%Y%m%d")
    written = []
    for index, image in enumerate(volume):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.PatientID = patient_id
        ds.PatientName = f"Demo^{patient_id}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyDate = ds.SeriesDate = today
        ds.SeriesNumber, ds.InstanceNumber = 1, index + 1
        ds.SeriesDescription = description
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, float(index)]
        ds.PixelSpacing = [1, 1]
        ds.SliceThickness = 1
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = (int(n) for n in image.shape)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, stack.bits, stack.bits - 1
        ds.PixelRepresentation = 1 if stack.signed else 0
        dtype = np.dtype("<i2" if stack.signed else "<u2")
        ds.PixelData = np.ascontiguousarray(image, dtype=dtype).tobytes()
        path = folder / f"{index + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
    return written


def write_site_folders(root: Path, *, max_slices: int | None = None) -> dict[str, Path]:
    """One DICOM folder per demo site under ``root``; returns site name -> folder."""
    folders = {}
    for site in DEMO_SITES:
        folder = root / site.name
        if folder.exists():
            shutil.rmtree(folder)
        stack = embedded_stack(site.package, site.relative_path)
        write_stack_as_dicom(stack, folder, patient_id=f"{site.name}-patient",
                             description=site.description, max_slices=max_slices)
        folders[site.name] = folder
    return folders


def copy_demo_study(folder: Path) -> Path:
    """Copy the embedded demo study (identifiable header) into ``folder``; return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    source = embedded_file(*STUDY_SOURCE)
    target = folder / source.name
    shutil.copyfile(source, target)
    return target
