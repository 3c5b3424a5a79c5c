"""Regions of interest: a box, a centred box, or a mask file, turned into one mask per slice.

A region reaches the ROI codec (:mod:`.roi_codec`) either as a codec option (``box=``,
``centre=``, for ``fedcodec bench`` and quick use) or as a :class:`RoiSpec` bound to the codec
with ``RoiCodec.with_roi`` (what ``fedcodec compress --roi-box / --roi-mask`` does). Boxes are
half-open pixel ranges, ``x0,y0,x1,y1`` = columns x0..x1-1, rows y0..y1-1, optionally slices
``z0..z1-1``; they are clipped to each image. Masks are non-zero = inside, of shape (rows, cols)
(every slice) or (slices, rows, cols).

NIfTI masks (``.nii``/``.nii.gz``, needs nibabel) are read in voxel order, axes (i, j, k) taken
as (column, row, slice) with no reorientation: make them on the same voxel grid as the series
(e.g. from the series' own conversion without reorienting), or save a ``.npy`` instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedcodec.shared.errors import FedcodecError

KINDS = ("box", "centre", "mask")


@dataclass(frozen=True, eq=False)
class RoiSpec:
    """Where the region of interest is; :meth:`slice_mask` gives it for one slice."""

    kind: str
    box: tuple[int, int, int, int] | None = None
    """x0, y0, x1, y1 (half-open, pixels), for ``box``."""
    slices: tuple[int, int] | None = None
    """z0, z1 (half-open) for ``box``; None = every slice."""
    fraction: float | None = None
    """Area fraction of the centred box (same aspect as the image), for ``centre``."""
    mask: np.ndarray | None = field(default=None, repr=False)
    """bool (rows, cols) or (slices, rows, cols), for ``mask``."""
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FedcodecError(f"unknown ROI kind {self.kind!r}")

    # -- per slice -------------------------------------------------------------------------

    def slice_mask(self, index: int, shape: tuple[int, int]) -> np.ndarray:
        """bool mask of slice ``index`` of a volume whose slices are ``shape``."""
        rows, cols = shape
        out = np.zeros(shape, dtype=bool)
        if self.kind == "box":
            assert self.box is not None
            if self.slices is not None and not self.slices[0] <= index < self.slices[1]:
                return out
            x0, y0, x1, y1 = self.box
            out[max(0, y0):max(0, min(rows, y1)), max(0, x0):max(0, min(cols, x1))] = True
            return out
        if self.kind == "centre":
            assert self.fraction is not None
            side = float(np.sqrt(self.fraction))
            h = max(1, round(rows * side))
            w = max(1, round(cols * side))
            y0, x0 = (rows - h) // 2, (cols - w) // 2
            out[y0:y0 + h, x0:x0 + w] = True
            return out
        assert self.mask is not None
        mask = self.mask if self.mask.ndim == 2 else self.mask[index]
        if mask.shape != tuple(shape):
            raise FedcodecError(f"ROI mask {self._name()}: slice shape {mask.shape} does not "
                                f"match the image {tuple(shape)}")
        return mask

    def check_volume(self, shape: tuple[int, int, int], name: str = "the series") -> None:
        """One-line error if this region cannot apply to a (slices, rows, cols) volume."""
        slices, rows, cols = shape
        if self.kind == "mask":
            assert self.mask is not None
            expected = (rows, cols) if self.mask.ndim == 2 else (slices, rows, cols)
            if self.mask.shape != expected:
                raise FedcodecError(
                    f"ROI mask {self._name()} has shape {self.mask.shape}, but {name} is "
                    f"{slices}x{rows}x{cols} (slices, rows, cols): give (rows, cols) or "
                    "(slices, rows, cols)")
        elif self.kind == "box":
            assert self.box is not None
            x0, y0 = self.box[:2]
            if x0 >= cols or y0 >= rows or (self.slices is not None and self.slices[0] >= slices):
                raise FedcodecError(f"ROI box {self.text()} lies outside {name} "
                                    f"({slices} slices of {rows}x{cols})")

    # -- identity --------------------------------------------------------------------------

    def text(self) -> str:
        if self.kind == "box":
            assert self.box is not None
            z = f",{self.slices[0]},{self.slices[1]}" if self.slices is not None else ""
            return ",".join(str(v) for v in self.box) + z
        if self.kind == "centre":
            return f"centre {self.fraction:g}"
        return self._name()

    def _name(self) -> str:
        return Path(self.source).name if self.source else "(array)"

    def sha256(self) -> str:
        """Identity of the region (mask bits and shape, or the box numbers)."""
        digest = hashlib.sha256()
        if self.kind == "mask":
            assert self.mask is not None
            digest.update(json.dumps(list(self.mask.shape)).encode())
            digest.update(np.packbits(self.mask, axis=None).tobytes())
        else:
            digest.update(json.dumps([self.kind, self.box, self.slices, self.fraction]).encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """For the container header (``fedcodec inspect``): kind, the box or mask shape, hash."""
        out: dict[str, Any] = {"kind": self.kind, "sha256": self.sha256()}
        if self.kind == "box":
            out["box"] = list(self.box or ())
            if self.slices is not None:
                out["slices"] = list(self.slices)
        elif self.kind == "centre":
            out["fraction"] = self.fraction
        else:
            assert self.mask is not None
            out["shape"] = list(self.mask.shape)
            out["inside_fraction"] = round(float(self.mask.mean()), 6)
        return out


def parse_box(text: str, sep: str = ",") -> RoiSpec:
    """``x0,y0,x1,y1[,z0,z1]`` (half-open) -> a box region; one-line error if malformed."""
    parts = [p.strip() for p in str(text).split(sep)]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (4, 6) or min(values) < 0:
        raise FedcodecError(f"bad ROI box {text!r}: expected x0{sep}y0{sep}x1{sep}y1"
                            f"[{sep}z0{sep}z1], non-negative integers, end exclusive")
    x0, y0, x1, y1 = values[:4]
    if x1 <= x0 or y1 <= y0:
        raise FedcodecError(f"bad ROI box {text!r}: need x1 > x0 and y1 > y0")
    slices = None
    if len(values) == 6:
        if values[5] <= values[4]:
            raise FedcodecError(f"bad ROI box {text!r}: need z1 > z0")
        slices = (values[4], values[5])
    return RoiSpec("box", box=(x0, y0, x1, y1), slices=slices, source=str(text))


def centred(fraction: float) -> RoiSpec:
    """A centred box covering ``fraction`` of every slice's area (for benchmarks)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction <= 1:
        raise FedcodecError(f"ROI centre fraction must be in (0, 1], not {fraction!r}")
    return RoiSpec("centre", fraction=float(fraction))


def from_array(mask: np.ndarray, source: str = "") -> RoiSpec:
    """A mask region from an array (non-zero = inside), 2-D or 3-D."""
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3) or mask.size == 0:
        raise FedcodecError(f"ROI mask {Path(source).name or '(array)'} must be (rows, cols) or "
                            f"(slices, rows, cols), not shape {mask.shape}")
    return RoiSpec("mask", mask=np.ascontiguousarray(mask != 0), source=source)


def load_mask_file(path: str | Path) -> RoiSpec:
    """Read ``.npy``, ``.npz`` (array ``mask``, else the only array) or NIfTI (nibabel)."""
    path = Path(path)
    if not path.is_file():
        raise FedcodecError(f"no such ROI mask file: {path}")
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            array = np.load(path, allow_pickle=False)
        elif name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if "mask" in keys:
                    array = archive["mask"]
                elif len(keys) == 1:
                    array = archive[keys[0]]
                else:
                    raise FedcodecError(f"ROI mask {path.name}: .npz holds {len(keys)} arrays; "
                                        "name the mask 'mask'")
        elif name.endswith((".nii", ".nii.gz")):
            try:
                import nibabel
            except ImportError:
                raise FedcodecError("NIfTI ROI masks need nibabel (pip install nibabel), or "
                                    "save the mask as .npy") from None
            array = np.asarray(nibabel.load(str(path)).dataobj)
            array = array.T if array.ndim in (2, 3) else array  # (i, j, k) -> (k, j, i)
        else:
            raise FedcodecError(f"ROI mask {path.name}: use .npy, .npz, .nii or .nii.gz")
    except FedcodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy / nibabel raise several types
        raise FedcodecError(f"cannot read ROI mask {path}: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise FedcodecError(f"ROI mask {path.name}: not a numeric array ({array.dtype})")
    return from_array(array, str(path))
