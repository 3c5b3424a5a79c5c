"""Reading one labelled slice from any research format, and the stated input policy.

A classifier sees a fixed square input (the codec codes 512² slices into a 32 x 32 latent grid).
Research data sets come in other sizes and formats, so how a slice becomes that input is a
*policy*, recorded in the model folder (``input_policy`` in ``classifier.pt`` meta and
``split.json``) and applied identically at training, evaluation and serving time:

* ``fit`` (default): intensities to 8 bits (8-bit images as they are; deeper DICOM/NIfTI values
  min-max scaled per slice), then resized preserving the aspect ratio so the longer side is
  ``size`` (bilinear, antialiased when shrinking), then zero-padded, centred, to ``size`` x
  ``size``. A 256² image is upscaled to 512², a 512 x 400 one padded on two sides only.
* ``pad``: the old behaviour, kept for reproducing earlier runs: centred zero padding (or a centre
  crop) without resizing. Never chosen silently: it must be asked for.

Formats: PNG and JPEG (one slice per file), DICOM (``.dcm`` or any file with the DICM preamble;
every frame of a multi-frame file is a slice), NIfTI (``.nii``, ``.nii.gz``; every slice along
the third axis). A volume's slice is named ``file#k``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fedcodec.shared.errors import CorruptDataError, FedcodecError

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom")
FIT, PAD = "fit", "pad"
POLICIES = (FIT, PAD)


@dataclass(frozen=True)
class InputPolicy:
    """How any slice becomes the classifier's ``size`` x ``size`` 8-bit input."""

    size: int = 512
    method: str = FIT

    def __post_init__(self) -> None:
        if self.method not in POLICIES:
            raise FedcodecError(f"unknown input policy {self.method!r}; use {' or '.join(POLICIES)}")
        if not 16 <= self.size <= 4096:
            raise FedcodecError(f"input size must be 16 to 4096 pixels, got {self.size}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> InputPolicy:
        """A model folder written before policies were recorded used centred padding to 512."""
        return cls(**data) if data else cls(512, PAD)

    def describe(self) -> str:
        if self.method == FIT:
            return (f"resize preserving aspect to {self.size} px (longer side), zero-pad to "
                    f"{self.size}x{self.size}; >8-bit values min-max scaled to 8 bits")
        return f"centred zero padding / crop to {self.size}x{self.size}, no resizing"

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Any 2-D slice -> ``uint8`` (size, size) under this policy."""
        grey = to_uint8(pixels)
        if self.method == FIT:
            grey = resize_longer_side(grey, self.size)
        return pad_to_square(grey, self.size)


def is_slice_file(path: Path) -> bool:
    """A file the data set reader takes (by name; extensionless files must start like DICOM)."""
    name = path.name.lower()
    if name.startswith("."):
        return False
    if name.endswith(PICTURE_SUFFIXES + NIFTI_SUFFIXES + DICOM_SUFFIXES):
        return True
    if "." in name:
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def is_volume_file(path: Path) -> bool:
    return not path.name.lower().endswith(PICTURE_SUFFIXES)


def read_slices(path: Path) -> list[np.ndarray]:
    """Every 2-D slice a file holds (one for PNG/JPEG), as stored."""
    path = Path(path)
    if not path.exists():
        raise FedcodecError(f"missing image {path}")
    if path.name.lower().endswith(PICTURE_SUFFIXES):
        import imagecodecs

        try:
            pixels = imagecodecs.imread(str(path))
        except Exception as exc:  # noqa: BLE001 - imagecodecs raises codec-specific errors
            raise CorruptDataError(f"cannot decode {path}: {str(exc).splitlines()[0]}") from None
        if pixels.ndim == 3:  # RGB(A) -> grey
            pixels = pixels[..., :3].mean(axis=2)
        if pixels.ndim != 2:
            raise CorruptDataError(f"{path}: expected a 2-D picture, got shape {pixels.shape}")
        return [pixels]
    from fedcodec.shared.sources import read_stacks

    stacks, _ = read_stacks(path)
    return [s for stack in stacks for s in stack.volume]


def read_slice(path: Path, index: int | None) -> np.ndarray:
    """One slice of a file (``index`` None for a single-slice picture)."""
    slices = read_slices(path)
    k = 0 if index is None else index
    if not 0 <= k < len(slices):
        raise CorruptDataError(f"{path} has {len(slices)} slices, no slice {k}")
    return slices[k]


def dicom_patient_id(path: Path) -> str:
    """PatientID of a DICOM file ("" when absent or not DICOM)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception:  # noqa: BLE001 - pydicom raises many types for non-DICOM files
        return ""
    return str(getattr(ds, "PatientID", "") or "").strip()


def content_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes: what the coding cache keys entries by."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit images unchanged; anything else min-max scaled per slice to 0..255."""
    if pixels.dtype == np.uint8:
        return pixels
    values = np.asarray(pixels, dtype=np.float64)
    if not np.isfinite(values).all():
        raise CorruptDataError("the slice has NaN or infinite values")
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    if pixels.dtype.kind in "iu" and lo >= 0 and hi <= 255:
        return values.astype(np.uint8)
    return np.round((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def resize_longer_side(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize so the longer side is ``size``, keeping the aspect ratio (bilinear, antialiased)."""
    rows, cols = pixels.shape
    if max(rows, cols) == size:
        return pixels
    scale = size / max(rows, cols)
    shape = (max(1, round(rows * scale)), max(1, round(cols * scale)))
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(pixels.astype(np.float32))[None, None]
    out = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False,
                        antialias=scale < 1)
    return out[0, 0].round().clamp(0, 255).numpy().astype(np.uint8)


def pad_to_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (centred) to ``size`` x ``size``; larger images are centre-cropped."""
    out = np.zeros((size, size), dtype=pixels.dtype)
    rows, cols = min(size, pixels.shape[0]), min(size, pixels.shape[1])
    r0, c0 = (pixels.shape[0] - rows) // 2, (pixels.shape[1] - cols) // 2
    R0, C0 = (size - rows) // 2, (size - cols) // 2
    out[R0 : R0 + rows, C0 : C0 + cols] = pixels[r0 : r0 + rows, c0 : c0 + cols]
    return out
