"""Real MR slices for the neural codec's experiments, and the by-series two-fold split.

Two readings of ``/work/shared/data/dicom``, each cached as .npz under ``/tmp/fcn``:

* ``issue`` (default): a small pydicom loader — files grouped by folder + SeriesInstanceUID +
  signedness, ordered by InstanceNumber, one slice per frame, Siemens mosaics kept whole. This is
  the 1807-slice set the issue-3 anchors were measured on (JPEG XL e7 3.877 bpp).
* ``project``: ``fedcodec.shared.dicom.read.read_series`` as the product reads it — mosaics split
  into their tiles, multi-volume series in (volume, position) order: 3705 slices.

Either way a series is ``(name, unsigned volume, bits)`` and lands in fold 0 or 1 by its path.
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pydicom.errors

from fedcodec.shared.pixels import to_unsigned

DICOM_ROOT = Path("/work/shared/data/dicom")
CACHE = Path("/tmp/fcn/series_cache")


@dataclass
class VolumeItem:
    """One series as the codec sees it."""

    name: str
    volume: np.ndarray  # (slices, rows, cols) uint8/uint16
    bits: int
    fold: int  # 0 or 1: the by-series split

    @property
    def multi_volume(self) -> bool:
        return self.name.split("/")[0] in MULTI_VOLUME_FOLDERS or any(
            key in self.name for key in MULTI_VOLUME_KEYS
        )


# Time series / diffusion series (more than one volume of the same slice positions).
MULTI_VOLUME_FOLDERS = ("toshiba",)
MULTI_VOLUME_KEYS = ("fMRI", "fmri", "DWI", "dti", "ep2d_diff", "siemens_a", "siemens_c")

# Fold 1 (held out when fold-0 weights are evaluated) — by series, balanced per vendor by hand.
FOLD1_KEYS = (
    "ge/In/01_Ax_DWI_TENSOR_R2",
    "3_fMRI_Multiphase_Des_0.35Delay",
    "5_fMRI_Multiphase_Des_VariableDelays1s",
    "philips/In/Magdeburg_2014",
    "toshiba/",
    "siemens_a/In/Orientation/cor",
    "siemens_a/In/Orientation/sag",
    "siemens_b/In/HFP",
    "4_ep2d_diff",
    "mr_0005",
    "mr_0006",
    "edge12/",
)


def _fold(name: str) -> int:
    return int(any(key in name for key in FOLD1_KEYS))


def _stored_values(ds: pydicom.Dataset) -> tuple[np.ndarray, int, bool]:
    arr = ds.pixel_array
    if arr.ndim == 2:
        arr = arr[None]
    bits = int(ds.BitsStored)
    signed = bool(int(ds.PixelRepresentation))
    arr = arr.astype(np.int64)
    if signed:
        arr = ((arr + (1 << (bits - 1))) & ((1 << bits) - 1)) - (1 << (bits - 1))
    else:
        arr = arr & ((1 << bits) - 1)
    return arr, bits, signed


def _load_with_pydicom() -> list[tuple[str, np.ndarray, int]]:
    groups: dict[tuple, list[tuple[int, Path]]] = collections.defaultdict(list)
    for path in sorted(DICOM_ROOT.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue  # notes.txt, LICENSE, a NIfTI: not DICOM
        if "Rows" not in ds:
            continue
        key = (str(path.parent.relative_to(DICOM_ROOT)), ds.SeriesInstanceUID, int(ds.PixelRepresentation))
        groups[key].append((int(ds.get("InstanceNumber", 0) or 0), path))
    out = []
    for (folder, uid, signed), files in sorted(groups.items()):
        slices, bits_all = [], set()
        for _, path in sorted(files):
            arr, bits, is_signed = _stored_values(pydicom.dcmread(path))
            slices.append(arr)
            bits_all.add((bits, is_signed))
        (bits, is_signed), = bits_all
        volume = np.concatenate(slices)
        unsigned, _ = to_unsigned(volume, bits, is_signed)
        out.append((f"{folder}/{uid[-6:]}{'s' if signed else ''}", unsigned, bits))
    return out


def _load_with_project_reader() -> list[tuple[str, np.ndarray, int]]:
    from fedcodec.shared.dicom.read import read_series

    series, _ = read_series(DICOM_ROOT)
    out = []
    for s in series:
        folder = str(Path(s.source_files[0]).parent.relative_to(DICOM_ROOT))
        unsigned, _ = to_unsigned(s.volume, s.bits_stored, s.signed)
        out.append((f"{folder}/{s.key[-6:]}{'s' if s.signed else ''}", unsigned, s.bits_stored))
    return out


def load_items(reader: str = "issue") -> list[VolumeItem]:
    """Every series, cached; sorted by name. ``reader``: "issue" or "project" (see above)."""
    cache = CACHE if reader == "issue" else CACHE.with_name(CACHE.name + "_" + reader)
    cache.mkdir(parents=True, exist_ok=True)
    index = cache / "index.txt"
    if not index.exists():
        load = _load_with_pydicom if reader == "issue" else _load_with_project_reader
        for name, volume, bits in load():
            key = hashlib.sha1(name.encode()).hexdigest()[:12]
            np.savez(cache / f"{key}.npz", volume=volume, bits=bits, name=name)
            with index.open("a") as fh:
                fh.write(f"{key}\n")
    items = []
    for key in index.read_text().split():
        with np.load(cache / f"{key}.npz") as z:
            name = str(z["name"])
            items.append(VolumeItem(name, z["volume"], int(z["bits"]), _fold(name)))
    return sorted(items, key=lambda item: item.name)


if __name__ == "__main__":
    import sys

    total = 0
    for item in load_items(sys.argv[1] if len(sys.argv) > 1 else "issue"):
        total += item.volume.shape[0]
        print(f"fold{item.fold} mv={int(item.multi_volume)} {item.volume.shape} {item.volume.dtype} "
              f"bits={item.bits} max={item.volume.max()} {item.name}")
    print("slices", total)
