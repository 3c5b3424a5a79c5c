"""The MRI a user has right after ``pip install fedcodec``: no download, no shared folder.

Three installed dependencies ship small real MR images:

- pydicom-data (package ``data_store``): ``MR2_UNCR.dcm`` (1024x1024, 12-bit),
  ``MR-SIEMENS-DICOM-WithOverlays.dcm`` (484x484, 12-bit), ``emri_small.dcm`` (10 frames 64x64);
- pydicom's own test files: ``MR_small.dcm`` (64x64, signed 16-bit);
- dipy's bundled files: ``S0_10slices.nii.gz`` (10 slices 128x128, uint16), ``aniso_vox.nii.gz``
  (24 slices 58x58) and ``small_64D.nii`` (a 4-D 10x10x10 diffusion series; its first two volumes,
  b=0 and one gradient direction, so 650 postage stamps don't swamp the per-slice means).

Each image appears once: pydicom-data's ``MR2_UNCI`` / ``MR2_J2KR`` / ``MR2_J2KI`` and the
``emri_small_*`` / ``MR_small_*`` variants are the same pixels in other transfer syntaxes (or
lossy), so only the uncompressed original is used. Paths are found with
:func:`importlib.util.find_spec` from where the packages are installed; nothing is imported from
them and :func:`pydicom.data.get_testdata_files` (which may download) is never called.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from fedcodec.shared.dicom.series import SkippedFile
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.sources import SliceStack, read_stacks, with_unique_names


@dataclass(frozen=True)
class DemoSource:
    """One embedded file: the package that ships it and its path inside that package."""

    package: str
    relative_path: str
    max_volumes: int | None = None
    """For 4-D files: how many volumes (stacks) of it to use, from the first."""


DEMO_SOURCES = (
    DemoSource("data_store", "data/MR2_UNCR.dcm"),
    DemoSource("data_store", "data/MR-SIEMENS-DICOM-WithOverlays.dcm"),
    DemoSource("data_store", "data/emri_small.dcm"),
    DemoSource("pydicom", "data/test_files/MR_small.dcm"),
    DemoSource("dipy", "data/files/S0_10slices.nii.gz"),
    DemoSource("dipy", "data/files/aniso_vox.nii.gz"),
    DemoSource("dipy", "data/files/small_64D.nii", max_volumes=2),
)


def _package_folder(package: str) -> Path | None:
    """Where an installed top-level package lives, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def demo_paths() -> list[tuple[DemoSource, Path]]:
    """Every embedded demo file that is installed, with its absolute path."""
    found = []
    for source in DEMO_SOURCES:
        folder = _package_folder(source.package)
        if folder is not None and (folder / source.relative_path).is_file():
            found.append((source, folder / source.relative_path))
    return found


def demo_stacks() -> tuple[list[SliceStack], list[SkippedFile]]:
    """The embedded MRI as stacks, ready for the benchmark (one load per file, in order)."""
    stacks: list[SliceStack] = []
    skipped: list[SkippedFile] = []
    for source, path in demo_paths():
        loaded, passed_over = read_stacks(path)
        stacks += loaded[: source.max_volumes]
        skipped += passed_over
    if not stacks:
        raise FedcodecError(
            "no embedded demo MRI found: install fedcodec's dependencies pydicom-data and dipy"
        )
    return with_unique_names(stacks), skipped
