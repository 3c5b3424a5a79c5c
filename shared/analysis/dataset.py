"""Labelled slices from any ImageFolder-style data set, and the fixed split every classifier uses.

Layouts (class names are folder names, any names and any count, sorted):

* ``ROOT/<class>/<file>``: one pool, split here (seeded, stratified by class);
* ``ROOT/train/<class>/...`` with ``ROOT/test/...`` and optionally ``ROOT/val/...``: the data
  set's own parts are used as they are (a missing ``val`` is cut from ``train``);
* a separate test folder (``analyze train --test-data DIR``): ``DIR/<class>/...`` is the test part.

Files: PNG, JPEG, DICOM and NIfTI (:mod:`.image_input`); a volume contributes every slice.

Why a split *file*: the latent, pixel and decoded-image classifiers must see exactly the same
slices, and a later run must reproduce them. It stores every item with its label, part root and
patient, the class names and the input policy, plus a SHA-256 so an edited file is caught.

Patients: when every slice has a patient id (DICOM PatientID, or a CSV the user gives with
``path,patient_id`` rows), the split keeps each patient's slices in one part. Otherwise slices of
one patient may land in several parts and results say so (the shared tumour set lost its ids).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedcodec.shared.analysis.image_input import (
    InputPolicy,
    dicom_patient_id,
    is_slice_file,
    is_volume_file,
    pad_to_square,
    read_slice,
    read_slices,
)
from fedcodec.shared.errors import CorruptDataError, FedcodecError

TUMOUR_CLASS_NAMES = ("pituitary", "meningioma", "glioma")
"""Folder ``0``, ``1``, ``2`` of the shared ``data/tumor`` set in that order (its README)."""
CLASS_NAMES = TUMOUR_CLASS_NAMES
IMAGE_SIZE = 512
SPLIT_FORMAT = "fedcodec-analysis-split/2"
PARTS = ("train", "val", "test")
PATIENT_CAVEAT = "patient IDs unknown: slices of one patient may be in train and test"


@dataclass(frozen=True)
class LabelledImage:
    """One slice: its path relative to its data root (``"glioma/17.jpg"``, ``"a/b.nii.gz#3"``
    for slice 3 of a volume), its class index and, when known, its patient."""

    name: str
    label: int
    patient: str = ""

    @property
    def file(self) -> str:
        return self.name.split("#", 1)[0]

    @property
    def slice_index(self) -> int | None:
        return int(self.name.split("#", 1)[1]) if "#" in self.name else None


@dataclass(frozen=True)
class DataSet:
    """Every labelled slice under one root (one part layout or one pool)."""

    root: Path
    class_names: tuple[str, ...]
    images: tuple[LabelledImage, ...]

    @property
    def patients_known(self) -> bool:
        return bool(self.images) and all(i.patient for i in self.images)


@dataclass(frozen=True)
class Split:
    """Train / validation / test lists, where each part lives, and how they were drawn."""

    seed: int
    fractions: tuple[float, float, float]
    train: tuple[LabelledImage, ...]
    val: tuple[LabelledImage, ...]
    test: tuple[LabelledImage, ...]
    class_names: tuple[str, ...] = TUMOUR_CLASS_NAMES
    roots: dict[str, str] = field(default_factory=dict)
    """Absolute data root of each part (names are relative to it)."""
    grouped_by_patient: bool = False
    input_policy: InputPolicy = InputPolicy(IMAGE_SIZE, "pad")

    def part(self, name: str) -> tuple[LabelledImage, ...]:
        if name not in PARTS:
            raise FedcodecError(f"unknown split part {name!r}; use train, val or test")
        return getattr(self, name)

    def root(self, name: str, default: Path | None = None) -> Path:
        if name in self.roots:
            return Path(self.roots[name])
        if default is None:
            raise FedcodecError(f"the split file does not say where its {name} images are")
        return Path(default)

    def digest(self) -> str:
        """SHA-256 over the three lists: names the exact split in results files."""
        text = json.dumps(
            [[[i.name, i.label, i.patient] for i in self.part(p)] for p in PARTS]
            + [list(self.class_names)]
        )
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def caveat(self) -> str:
        return "" if self.grouped_by_patient else PATIENT_CAVEAT


def class_folders(root: Path) -> list[str]:
    """Sub-folders holding at least one readable slice file, sorted by name."""
    return sorted(
        p.name for p in Path(root).iterdir()
        if p.is_dir() and not p.name.startswith(".") and any(_slice_files(p))
    )


def has_part_layout(root: Path) -> bool:
    """``ROOT/train`` and ``ROOT/test`` each holding class folders."""
    return all((Path(root) / p).is_dir() and class_folders(Path(root) / p)
               for p in ("train", "test"))


def _slice_files(folder: Path):
    return (p for p in sorted(folder.rglob("*")) if p.is_file() and is_slice_file(p))


def _natural_key(path: Path) -> tuple:
    stem = path.name.split(".")[0]
    return (str(path.parent), len(stem), stem, path.name)


def read_patient_csv(path: Path) -> dict[str, str]:
    """``path,patient_id`` rows (a header row is allowed) -> {relative path: patient}."""
    try:
        rows = list(csv.reader(Path(path).read_text().splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise FedcodecError(f"cannot read patient file {path}: {exc}") from None
    table = {}
    for number, row in enumerate(rows, 1):
        if not row or (number == 1 and row[0].strip().lower() in ("path", "file", "image")):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise FedcodecError(f"{path} line {number}: expected 'path,patient_id'")
        table[row[0].strip().replace("\\", "/")] = row[1].strip()
    return table


def list_dataset(
    root: Path,
    class_names: tuple[str, ...] | None = None,
    *,
    patients: dict[str, str] | None = None,
    aliases: tuple[str, ...] | None = None,
) -> DataSet:
    """Every slice of ``ROOT/<class>/...``; with ``class_names`` the folders must be among them
    or among ``aliases`` (the model's display names, same order): evaluation maps another data
    set's folders to the model's classes by name."""
    root = Path(root)
    if not root.is_dir():
        raise FedcodecError(f"no such data folder: {root}")
    folders = class_folders(root)
    if not folders:
        raise FedcodecError(
            f"{root} has no class folders with images (expected {root}/<class name>/<image>; "
            "PNG, JPEG, DICOM or NIfTI)"
        )
    if class_names is None:
        class_names = tuple(folders)
    else:
        known = set(class_names) | set(aliases or ())
        unknown = [f for f in folders if f not in known]
        if unknown:
            raise FedcodecError(
                f"{root} has class folder(s) {', '.join(unknown)} the model does not know; "
                f"its classes are {', '.join(aliases or class_names)}"
            )
    found: list[LabelledImage] = []
    for folder in folders:
        label = (class_names.index(folder) if folder in class_names
                 else tuple(aliases or ()).index(folder))
        for path in sorted(_slice_files(root / folder), key=_natural_key):
            rel = path.relative_to(root).as_posix()
            patient = (patients or {}).get(rel, "")
            if not patient and not path.name.lower().endswith((".png", ".jpg", ".jpeg")):
                patient = dicom_patient_id(path)
            if is_volume_file(path):
                count = len(read_slices(path))
                found += [LabelledImage(f"{rel}#{k}", label, patient) for k in range(count)]
            else:
                found.append(LabelledImage(rel, label, patient))
    if patients:
        missing = [i.file for i in found if not i.patient]
        if missing:
            raise FedcodecError(
                f"the patient file names no patient for {len(missing)} image(s), e.g. {missing[0]}"
            )
    return DataSet(root, tuple(class_names), tuple(found))


def list_labelled_images(root: Path) -> list[LabelledImage]:
    """Every slice of ``root``'s class folders (class index = sorted folder position)."""
    return list(list_dataset(root).images)


def _cut(members: list, fractions, rng) -> list[list]:
    order = rng.permutation(len(members))
    n = len(members)
    n_val = round(fractions[1] * n)
    n_test = round(fractions[2] * n)
    if n >= 3:  # tiny classes: every part asked for gets at least one member
        n_val, n_test = max(n_val, fractions[1] > 0), max(n_test, fractions[2] > 0)
    n_train = max(0, n - n_val - n_test)
    cuts = (0, n_train, n_train + n_val, n)
    return [[members[k] for k in order[cuts[p] : cuts[p + 1]]] for p in range(3)]


def make_split(
    images: list[LabelledImage] | tuple[LabelledImage, ...],
    seed: int = 20261125,
    fractions=(0.7, 0.15, 0.15),
    *,
    class_names: tuple[str, ...] = TUMOUR_CLASS_NAMES,
    root: Path | None = None,
    input_policy: InputPolicy = InputPolicy(),
) -> Split:
    """Stratified, seeded split. With every patient known, whole patients are assigned (each
    patient stratified by its most common class), so no patient is in two parts."""
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise FedcodecError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[LabelledImage]] = [[], [], []]
    grouped = bool(images) and all(i.patient for i in images)
    if grouped:
        by_patient: dict[str, list[LabelledImage]] = {}
        for image in images:
            by_patient.setdefault(image.patient, []).append(image)
        majority = {p: Counter(i.label for i in s).most_common(1)[0][0]
                    for p, s in by_patient.items()}
        for label in sorted(set(majority.values())):
            members = sorted(p for p, m in majority.items() if m == label)
            for p, chosen in enumerate(_cut(members, fractions, rng)):
                parts[p] += [i for patient in chosen for i in by_patient[patient]]
    else:
        for label in sorted({i.label for i in images}):
            members = [i for i in images if i.label == label]
            for p, chosen in enumerate(_cut(members, fractions, rng)):
                parts[p] += chosen
    roots = ({p: str(Path(root).resolve()) for p in (*PARTS, "data")}
             if root is not None else {})
    return Split(seed, tuple(fractions), *(tuple(p) for p in parts), class_names=class_names,
                 roots=roots, grouped_by_patient=grouped, input_policy=input_policy)


def split_dataset(
    data_root: Path,
    *,
    test_root: Path | None = None,
    seed: int = 20261125,
    patients: dict[str, str] | None = None,
    input_policy: InputPolicy = InputPolicy(),
    class_names: tuple[str, ...] | None = None,
) -> Split:
    """The split for a data folder in any of the three layouts (see the module docstring)."""
    data_root = Path(data_root)
    if has_part_layout(data_root):
        if test_root is not None:
            raise FedcodecError(f"{data_root} has its own test/ folder; drop --test-data")
        names = class_names or tuple(sorted(set(class_folders(data_root / "train"))
                                            | set(class_folders(data_root / "test"))))
        train = list_dataset(data_root / "train", names, patients=_under(patients, "train"))
        test = list_dataset(data_root / "test", names, patients=_under(patients, "test"))
        if (data_root / "val").is_dir():
            val = list_dataset(data_root / "val", names, patients=_under(patients, "val"))
            train_images, val_images = train.images, val.images
            val_root = val.root
        else:  # cut 15 % of the training folder for validation (early stopping, heads)
            inner = make_split(train.images, seed, (0.85, 0.15, 0.0), class_names=names)
            train_images, val_images, val_root = inner.train, inner.val, train.root
        grouped = all(d and all(i.patient for i in d) for d in (train_images, val_images))
        return Split(seed, (0.0, 0.0, 0.0), tuple(train_images), tuple(val_images), test.images,
                     class_names=names, grouped_by_patient=grouped, input_policy=input_policy,
                     roots={"train": str(train.root.resolve()), "val": str(val_root.resolve()),
                            "test": str(test.root.resolve()), "data": str(data_root.resolve())})
    pool = list_dataset(data_root, class_names, patients=patients)
    if test_root is None:
        return make_split(pool.images, seed, class_names=pool.class_names, root=data_root,
                          input_policy=input_policy)
    test = list_dataset(test_root, _merged(pool.class_names, test_root), patients=None)
    inner = make_split(pool.images, seed, (0.85, 0.15, 0.0), class_names=test.class_names,
                       input_policy=input_policy)
    relabel = {i: test.class_names.index(n) for i, n in enumerate(pool.class_names)}
    train = tuple(LabelledImage(i.name, relabel[i.label], i.patient) for i in inner.train)
    val = tuple(LabelledImage(i.name, relabel[i.label], i.patient) for i in inner.val)
    return Split(seed, (0.85, 0.15, 0.0), train, val, test.images, class_names=test.class_names,
                 grouped_by_patient=inner.grouped_by_patient, input_policy=input_policy,
                 roots={"train": str(data_root.resolve()), "val": str(data_root.resolve()),
                        "test": str(Path(test_root).resolve()), "data": str(data_root.resolve())})


def _merged(names: tuple[str, ...], other_root: Path) -> tuple[str, ...]:
    return tuple(sorted(set(names) | set(class_folders(other_root))))


def _under(patients: dict[str, str] | None, part: str) -> dict[str, str] | None:
    """CSV paths are relative to the data root; part lists are relative to ``root/part``."""
    if not patients:
        return None
    prefix = f"{part}/"
    return {k.removeprefix(prefix): v for k, v in patients.items() if k.startswith(prefix)}


def save_split(split: Split, path: Path) -> None:
    """Write the split as JSON (temp file + rename)."""
    payload = {
        "format": SPLIT_FORMAT,
        "seed": split.seed,
        "fractions": list(split.fractions),
        "classes": list(split.class_names),
        "roots": split.roots,
        "grouped_by_patient": split.grouped_by_patient,
        "input_policy": split.input_policy.to_json(),
        "caveat": split.caveat,
        "sha256": split.digest(),
        **{p: [[i.name, i.label, i.patient] for i in split.part(p)] for p in PARTS},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(tmp, path)


def load_split(path: Path) -> Split:
    """Read a split file (this format or the older ``/1``, tumour classes) and check its digest."""
    try:
        payload = json.loads(Path(path).read_text())
        fmt = payload.get("format")
        if fmt not in (SPLIT_FORMAT, "fedcodec-analysis-split/1"):
            raise CorruptDataError(f"{path} is not a fedcodec split file")
        parts = [
            tuple(LabelledImage(str(e[0]), int(e[1]), str(e[2]) if len(e) > 2 else "")
                  for e in payload[p])
            for p in PARTS
        ]
        split = Split(
            int(payload["seed"]), tuple(payload["fractions"]), *parts,
            class_names=tuple(payload.get("classes") or TUMOUR_CLASS_NAMES),
            roots=dict(payload.get("roots") or {}),
            grouped_by_patient=bool(payload.get("grouped_by_patient", False)),
            input_policy=InputPolicy.from_json(payload.get("input_policy")),
        )
    except FileNotFoundError:
        raise FedcodecError(f"no such split file: {path}") from None
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CorruptDataError(f"unreadable split file {path}: {exc}") from None
    expected = payload.get("sha256")
    if fmt == "fedcodec-analysis-split/1":
        text = json.dumps([[[i.name, i.label] for i in split.part(p)] for p in PARTS])
        if hashlib.sha256(text.encode()).hexdigest() != expected:
            raise CorruptDataError(f"split file {path} was edited (its sha256 does not match)")
    elif split.digest() != expected:
        raise CorruptDataError(f"split file {path} was edited (its sha256 does not match)")
    return split


def load_image(root: Path, image: LabelledImage, policy: InputPolicy | None = None) -> np.ndarray:
    """The slice as ``uint8`` (size, size) under ``policy`` (default: the tumour set's centred
    padding to 512, what earlier runs used)."""
    policy = policy or InputPolicy(IMAGE_SIZE, "pad")
    pixels = read_slice(Path(root) / image.file, image.slice_index)
    return policy.apply(pixels)


__all__ = [
    "CLASS_NAMES", "DataSet", "IMAGE_SIZE", "LabelledImage", "PATIENT_CAVEAT", "Split",
    "TUMOUR_CLASS_NAMES", "class_folders", "has_part_layout", "list_dataset",
    "list_labelled_images", "load_image", "load_split", "make_split", "pad_to_square",
    "read_patient_csv", "save_split", "split_dataset",
]
