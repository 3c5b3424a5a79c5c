"""Real MR slices for the neural codec's experiments, and the by-series two-fold split.

Loads every series under ``/work/shared/data/dicom`` as ``(name, unsigned volume, bits)``. Uses
``fedcodec.shared.dicom.read.read_series`` when it exists; until then a small pydicom loader
(files grouped by folder + SeriesInstanceUID + signedness, ordered by InstanceNumber; one slice
per frame; Siemens mosaics stay one slice, as in the issue-3 measurements). Cached as .npz under
``/tmp/fcn`` because decoding 1800 DICOM files takes a while on 2 cores.
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

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
        except Exception:
            continue
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


def load_items() -> list[VolumeItem]:
    """Every series, cached; sorted by name."""
    CACHE.mkdir(parents=True, exist_ok=True)
    index = CACHE / "index.txt"
    if not index.exists():
        for name, volume, bits in _load_with_pydicom():
            key = hashlib.sha1(name.encode()).hexdigest()[:12]
            np.savez(CACHE / f"{key}.npz", volume=volume, bits=bits, name=name)
            with index.open("a") as fh:
                fh.write(f"{key}\n")
    items = []
    for key in index.read_text().split():
        with np.load(CACHE / f"{key}.npz") as z:
            name = str(z["name"])
            items.append(VolumeItem(name, z["volume"], int(z["bits"]), _fold(name)))
    return sorted(items, key=lambda item: item.name)


if __name__ == "__main__":
    total = 0
    for item in load_items():
        total += item.volume.shape[0]
        print(f"fold{item.fold} mv={int(item.multi_volume)} {item.volume.shape} {item.volume.dtype} "
              f"bits={item.bits} max={item.volume.max()} {item.name}")
    print("slices", total)
