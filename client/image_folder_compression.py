"""``fedcodec compress`` on research images: PNG, JPEG and NIfTI files, one ``.fcz`` per file.

Research data sets are folders of pictures or NIfTI volumes, not DICOM studies. Each file becomes
one container: its slices (one for a picture, every slice of every volume for NIfTI) are wrapped
in a minimal single-frame MR DICOM header (no identity: patient "research", stored values kept
exactly, bit depth as stored) and coded by :func:`~fedcodec.client.compression.compress_study`
with the same modes, codecs and pixel checks as a DICOM study. ``decompress`` gives DICOM back.

The output is a folder mirroring the input: ``images/glioma/17.png`` -> ``OUT/glioma/17.png.fcz``.
Colour pictures are refused (fedcodec codes greyscale; converting would not be lossless).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fedcodec.shared.errors import CorruptDataError, FedcodecError

PICTURES = (".png", ".jpg", ".jpeg")
NIFTI = (".nii", ".nii.gz")


def is_research_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(PICTURES + NIFTI)


def research_images(path: Path) -> list[Path]:
    """The picture/NIfTI files ``path`` is or holds (sorted); empty for a DICOM study."""
    path = Path(path)
    if path.is_file():
        return [path] if is_research_image(path) else []
    if not path.is_dir():
        return []
    files = sorted(p for p in path.rglob("*") if not p.name.startswith("."))
    images = [p for p in files if is_research_image(p)]
    others = [p for p in files if p.is_file() and not is_research_image(p)
              and p.suffix.lower() not in (".txt", ".csv", ".md", ".json")]
    if images and others:
        dicom_like = [p for p in others if _is_dicom(p)]
        if dicom_like:
            raise FedcodecError(
                f"{path} mixes DICOM ({dicom_like[0].name}) and research images "
                f"({images[0].name}); compress them separately")
    return images


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _stacks(path: Path):
    from fedcodec.shared.sources import SliceStack, read_stacks

    if path.name.lower().endswith(NIFTI):
        stacks, _ = read_stacks(path)
        return stacks
    import imagecodecs

    try:
        pixels = imagecodecs.imread(str(path))
    except Exception as exc:  # noqa: BLE001 - codec-specific errors
        raise CorruptDataError(f"cannot decode {path}: {str(exc).splitlines()[0]}") from None
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        grey = (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all()
        if not grey:
            raise FedcodecError(f"{path} is a colour picture; fedcodec codes greyscale images")
        pixels = pixels[..., 0]
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise FedcodecError(f"{path}: expected an 8- or 16-bit greyscale picture, got "
                            f"{pixels.dtype} {pixels.shape}")
    bits = 8 if pixels.dtype == np.uint8 else max(2, int(pixels.max()).bit_length())
    return [SliceStack(path.name, pixels[np.newaxis].astype(np.uint16), bits, False, path,
                       "picture")]


def compress_images(files: list[Path], source_root: Path, out_dir: Path, *, force: bool = False,
                    **options: Any) -> list[tuple[Path, Any]]:
    """One verified ``.fcz`` per file under ``out_dir``; returns (container, report) pairs."""
    from fedcodec.client.compression import compress_study
    from fedcodec.client.demo.embedded_sites import write_stack_as_dicom

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FedcodecError(f"{out_dir} is a file; for images -o names a folder of .fcz files")
    root = Path(source_root) if Path(source_root).is_dir() else Path(source_root).parent
    targets = {path: out_dir / f"{path.relative_to(root).as_posix()}.fcz" for path in files}
    for target in targets.values():  # every refusal before the first container is written
        if target.exists() and not force:
            raise FedcodecError(f"{target} exists; use --force to overwrite it")
    stacks = {path: _stacks(path) for path in files}
    written = []
    for path, target in targets.items():
        with tempfile.TemporaryDirectory(prefix="fedcodec-images-") as work:
            for number, stack in enumerate(stacks[path]):
                write_stack_as_dicom(stack, Path(work) / f"series{number}", patient_id="research",
                                     description=f"{path.name} {stack.description}"[:64],
                                     max_slices=None)
            target.parent.mkdir(parents=True, exist_ok=True)
            written.append((target, compress_study(Path(work), target, **options)))
    return written
