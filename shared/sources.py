"""Any image source a user points fedcodec at, turned into stacks of integer slices.

A *stack* is what the benchmark and the codecs consume: a (slices, rows, cols) volume of stored
integer values, its real bit depth, whether it is signed, a name and one stable id per slice.

Accepted paths:

- a DICOM folder or file: every series :func:`fedcodec.shared.dicom.read_series` finds; files it
  passes over are returned as :class:`SkippedFile` for the caller to report. A folder is read as
  DICOM only (a stray ``.nii`` beside the DICOM files is skipped, not mixed in).
- a NIfTI file (``.nii``, ``.nii.gz``): the *stored* (unscaled) values, so lossless means
  bit-exact against the file. Slices are taken along the third axis, each as (y, x). A 4-D file is
  split into one stack per volume, in file order; trailing axes of length 1 are dropped.
- a ``.npy`` file: a 2-D image (one slice) or a 3-D (slices, rows, cols) stack.

Float data are refused unless every value is a finite integer (some converters store integer
scanner values as float32); fedcodec compresses stored integers and silently quantising floats
would make "lossless" a lie. For NIfTI and ``.npy`` the bit depth is the smallest that holds the
data range (at least 2, the smallest JPEG-LS precision), and the data are signed only if some value
is negative. Values needing more than 16 bits are refused. Signed stacks are shifted to unsigned
with :func:`fedcodec.shared.pixels.to_unsigned` before any codec sees them
(:meth:`SliceStack.codec_volume`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedcodec.shared.dicom import Series, SkippedFile, read_series
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.pixels import to_unsigned

MAX_BITS = 16
MIN_BITS = 2
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class SliceStack:
    """One stack of 2-D integer slices from one series, NIfTI volume or array."""

    name: str
    """Unique within one load; the prefix of every slice id."""
    volume: np.ndarray
    """(slices, rows, cols) stored values; a signed integer dtype when ``signed``."""
    bits: int
    """Real bit depth of the values (Bits Stored for DICOM)."""
    signed: bool
    source: Path
    description: str = ""
    positions_per_volume: int | None = None
    """From the DICOM headers (:attr:`Series.positions_per_volume`); None when unknown."""

    @property
    def slice_ids(self) -> list[str]:
        """Stable ``name/index`` ids, the ``slice_id`` of benchmark records."""
        return [f"{self.name}/{i}" for i in range(self.volume.shape[0])]

    @property
    def pixels(self) -> int:
        return int(self.volume.size)

    def codec_volume(self) -> tuple[np.ndarray, int]:
        """``(unsigned volume, offset)`` as codecs take it (offset 0 unless signed)."""
        try:
            return to_unsigned(self.volume, self.bits, self.signed)
        except ValueError as exc:
            raise FedcodecError(f"{self.name}: {exc}") from None

    def head(self, slices: int) -> SliceStack:
        """The first ``slices`` slices as a stack with the same name (ids stay stable)."""
        return SliceStack(
            self.name, self.volume[:slices], self.bits, self.signed, self.source, self.description,
            self.positions_per_volume,
        )


def read_stacks(
    path: str | Path, *, split_mosaics: bool = True
) -> tuple[list[SliceStack], list[SkippedFile]]:
    """Every usable stack under ``path`` and the files passed over.

    ``split_mosaics`` (DICOM only) turns each Siemens mosaic into its tiles, as the reader does by
    default; False keeps every mosaic as the one image the file stores.

    Raises :class:`FedcodecError` (one line) for a missing path, an empty folder, a path with no
    usable images, or an unsupported or corrupt file.
    """
    path = Path(path)
    if not path.exists():
        raise FedcodecError(f"no such file or folder: {path}")
    if path.is_dir():
        if not any(p.is_file() for p in path.rglob("*")):
            raise FedcodecError(f"folder is empty: {path}")
        stacks, skipped = _dicom_stacks(path, split_mosaics)
    elif _is_nifti(path):
        stacks, skipped = _nifti_stacks(path), []
    elif path.suffix.lower() == ".npy":
        stacks, skipped = [_npy_stack(path)], []
    else:
        try:
            stacks, skipped = _dicom_stacks(path, split_mosaics)
        except CorruptDataError:
            raise
        except FedcodecError as exc:
            raise FedcodecError(f"{exc}; fedcodec reads DICOM, .nii, .nii.gz and .npy") from None
    if not stacks:  # the reader raises first; kept so no caller ever gets an empty list
        raise FedcodecError(f"no usable images in {path} ({len(skipped)} files skipped)")
    return with_unique_names(stacks), skipped


def with_unique_names(stacks: list[SliceStack]) -> list[SliceStack]:
    """Rename repeated names (``name~2``, ``name~3``) in place so slice ids never collide."""
    used: set[str] = set()
    for stack in stacks:
        name, copy = stack.name, 1
        while name in used:
            copy += 1
            name = f"{stack.name}~{copy}"
        stack.name = name
        used.add(name)
    return stacks


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _dicom_stacks(path: Path, split_mosaics: bool) -> tuple[list[SliceStack], list[SkippedFile]]:
    series, skipped = read_series(path, split_mosaics=split_mosaics)
    return [_series_stack(s) for s in series], skipped


def _series_stack(series: Series) -> SliceStack:
    description = series.description or series.modality
    source = series.source_files[0] if series.source_files else Path(series.key)
    return SliceStack(
        name=series.key,
        volume=series.volume,
        bits=series.bits_stored,
        signed=series.signed,
        source=source,
        description=description,
        positions_per_volume=series.positions_per_volume,
    )


def _nifti_stacks(path: Path) -> list[SliceStack]:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj.get_unscaled())
    except (ImageFileError, OSError, ValueError, EOFError, zlib.error) as exc:
        raise CorruptDataError(f"cannot read NIfTI file {path}: {_one_line(exc)}") from None
    while data.ndim > 2 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    if data.ndim not in (3, 4):
        raise FedcodecError(f"{path}: {data.ndim}-D NIfTI is not supported (2-D, 3-D or 4-D only)")
    data = _integer_values(data, path)
    bits, signed = _bit_depth(data, path)
    volumes = [data] if data.ndim == 3 else [data[..., t] for t in range(data.shape[3])]
    stacks = []
    for t, volume in enumerate(volumes):
        name = path.name if len(volumes) == 1 else f"{path.name}:vol{t}"
        stacks.append(
            SliceStack(
                name=name,
                volume=np.ascontiguousarray(volume.transpose(2, 1, 0)),
                bits=bits,
                signed=signed,
                source=path,
                description=f"NIfTI volume {t} of {len(volumes)}" if len(volumes) > 1 else "NIfTI",
            )
        )
    return stacks


def _npy_stack(path: Path) -> SliceStack:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CorruptDataError(f"cannot read .npy file {path}: {_one_line(exc)}") from None
    if not isinstance(data, np.ndarray) or data.ndim not in (2, 3):
        shape = getattr(data, "shape", None)
        raise FedcodecError(f"{path}: expected a 2-D image or 3-D stack, got shape {shape}")
    if data.ndim == 2:
        data = data[np.newaxis]
    data = _integer_values(data, path)
    bits, signed = _bit_depth(data, path)
    return SliceStack(path.name, np.ascontiguousarray(data), bits, signed, path, ".npy array")


def _integer_values(data: np.ndarray, path: Path) -> np.ndarray:
    """The data as an integer array; floats only when every value is a finite integer."""
    if data.size == 0:
        raise FedcodecError(f"{path}: the array is empty")
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.integer):
        return data
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise FedcodecError(
                f"{path}: holds non-integer {data.dtype} values; fedcodec compresses stored "
                "integers (quantise the data to integers first)"
            )
        if data.min() < -(1 << (MAX_BITS - 1)) or data.max() >= (1 << MAX_BITS):
            raise FedcodecError(f"{path}: float values outside the 16-bit integer range")
        return data.astype(np.int32)
    raise FedcodecError(f"{path}: unsupported data type {data.dtype}")


def _bit_depth(data: np.ndarray, path: Path) -> tuple[int, bool]:
    """The smallest ``(bits, signed)`` that holds the data range, and the dtype to keep."""
    low, high = int(data.min()), int(data.max())
    if low < 0:
        bits = max(MIN_BITS, max((-low - 1).bit_length(), high.bit_length()) + 1)
        signed = True
    else:
        bits, signed = max(MIN_BITS, high.bit_length()), False
    if bits > MAX_BITS:
        raise FedcodecError(
            f"{path}: values {low}..{high} need {bits} bits; fedcodec codes at most {MAX_BITS}"
        )
    return bits, signed


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def first_slices(stacks: list[SliceStack], limit: int | None) -> list[SliceStack]:
    """At most ``limit`` slices in total, taken in order (the last stack may be cut short)."""
    if limit is None:
        return stacks
    if limit < 1:
        raise FedcodecError(f"slice limit must be at least 1, got {limit}")
    kept: list[SliceStack] = []
    left = limit
    for stack in stacks:
        if left <= 0:
            break
        kept.append(stack if stack.volume.shape[0] <= left else stack.head(left))
        left -= kept[-1].volume.shape[0]
    return kept
