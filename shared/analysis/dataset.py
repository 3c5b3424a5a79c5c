"""The labelled tumour slices and the fixed, seeded split every classifier is trained and tested on.

Why a split *file*: the latent, pixel and decoded-image classifiers must see exactly the same
slices, and a later run (or a reviewer) must be able to reproduce them. The split is stratified by
class and seeded; the file stores the seed, the fractions and every file name with its label, plus
a SHA-256 of that list so a changed data folder is caught instead of silently re-split.

Caveat (from ``data/README.md``): patient IDs were lost in this copy of the data set, so slices of
one patient can land in both train and test; accuracies are optimistic for unseen patients.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np

from fedcodec.shared.errors import CorruptDataError, FedcodecError

CLASS_NAMES = ("pituitary", "meningioma", "glioma")
"""Folder ``0``, ``1``, ``2`` of ``data/tumor`` in that order."""
IMAGE_SIZE = 512
SPLIT_FORMAT = "fedcodec-analysis-split/1"


@dataclass(frozen=True)
class LabelledImage:
    """One slice: its path relative to the data root (``"2/17.jpg"``) and its class index."""

    name: str
    label: int


@dataclass(frozen=True)
class Split:
    """Train / validation / test lists, and how they were drawn."""

    seed: int
    fractions: tuple[float, float, float]
    train: tuple[LabelledImage, ...]
    val: tuple[LabelledImage, ...]
    test: tuple[LabelledImage, ...]

    def part(self, name: str) -> tuple[LabelledImage, ...]:
        if name not in ("train", "val", "test"):
            raise FedcodecError(f"unknown split part {name!r}; use train, val or test")
        return getattr(self, name)

    def digest(self) -> str:
        """SHA-256 over the three lists: names the exact split in results files."""
        text = json.dumps(
            [[[i.name, i.label] for i in self.part(p)] for p in ("train", "val", "test")]
        )
        return hashlib.sha256(text.encode()).hexdigest()


def list_labelled_images(root: Path) -> list[LabelledImage]:
    """Every ``root/<class>/<n>.jpg``, sorted by class then number."""
    root = Path(root)
    if not root.is_dir():
        raise FedcodecError(f"no such data folder: {root}")
    found: list[LabelledImage] = []
    for label in range(len(CLASS_NAMES)):
        folder = root / str(label)
        if not folder.is_dir():
            raise FedcodecError(f"{root} has no class folder {label}/ (expected 0/, 1/, 2/)")
        names = sorted(folder.glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))
        found += [LabelledImage(f"{label}/{p.name}", label) for p in names]
    if not found:
        raise FedcodecError(f"no .jpg images under {root}/0, 1, 2")
    return found


def make_split(
    images: list[LabelledImage], seed: int = 20261125, fractions=(0.7, 0.15, 0.15)
) -> Split:
    """Stratified, seeded split: each class is shuffled and cut at the same fractions."""
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise FedcodecError(f"split fractions must be positive and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[LabelledImage]] = [[], [], []]
    for label in sorted({i.label for i in images}):
        members = [i for i in images if i.label == label]
        order = rng.permutation(len(members))
        n_train = round(fractions[0] * len(members))
        n_val = round(fractions[1] * len(members))
        cuts = (0, n_train, n_train + n_val, len(members))
        for p in range(3):
            parts[p] += [members[k] for k in order[cuts[p] : cuts[p + 1]]]
    return Split(seed, tuple(fractions), *(tuple(p) for p in parts))


def save_split(split: Split, path: Path) -> None:
    """Write the split as JSON (temp file + rename)."""
    payload = {
        "format": SPLIT_FORMAT,
        "seed": split.seed,
        "fractions": list(split.fractions),
        "classes": list(CLASS_NAMES),
        "caveat": "patient IDs unknown: slices of one patient may be in several parts",
        "sha256": split.digest(),
        **{p: [[i.name, i.label] for i in split.part(p)] for p in ("train", "val", "test")},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(tmp, path)


def load_split(path: Path) -> Split:
    """Read a split file and check its digest."""
    try:
        payload = json.loads(Path(path).read_text())
        if payload.get("format") != SPLIT_FORMAT:
            raise CorruptDataError(f"{path} is not a fedcodec split file")
        parts = [
            tuple(LabelledImage(str(n), int(lbl)) for n, lbl in payload[p])
            for p in ("train", "val", "test")
        ]
        split = Split(int(payload["seed"]), tuple(payload["fractions"]), *parts)
    except FileNotFoundError:
        raise FedcodecError(f"no such split file: {path}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptDataError(f"unreadable split file {path}: {exc}") from None
    if split.digest() != payload.get("sha256"):
        raise CorruptDataError(f"split file {path} was edited (its sha256 does not match)")
    return split


def load_image(root: Path, image: LabelledImage) -> np.ndarray:
    """The slice as ``uint8`` (512, 512): grey; smaller images are zero-padded, centred."""
    path = Path(root) / image.name
    try:
        pixels = imagecodecs.imread(str(path))
    except FileNotFoundError:
        raise FedcodecError(f"missing image {path}") from None
    except Exception as exc:  # noqa: BLE001 - imagecodecs raises codec-specific errors
        raise CorruptDataError(f"cannot decode {path}: {exc}") from None
    if pixels.ndim == 3:
        pixels = pixels[..., :3].mean(axis=2).round().astype(np.uint8)
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise CorruptDataError(f"{path}: expected 8-bit grey, got {pixels.dtype} {pixels.shape}")
    return pad_to_square(pixels, IMAGE_SIZE)


def pad_to_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (centred) to ``size`` x ``size``; larger images are centre-cropped."""
    out = np.zeros((size, size), dtype=pixels.dtype)
    rows, cols = min(size, pixels.shape[0]), min(size, pixels.shape[1])
    r0, c0 = (pixels.shape[0] - rows) // 2, (pixels.shape[1] - cols) // 2
    R0, C0 = (size - rows) // 2, (size - cols) // 2
    out[R0 : R0 + rows, C0 : C0 + cols] = pixels[r0 : r0 + rows, c0 : c0 + cols]
    return out
