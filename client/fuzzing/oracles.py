"""What a correct answer looks like for each target, given the seed it came from.

An exit 0 is only *correct* when the output is what the unmutated input would have given (or, for
inputs the CLI may legitimately accept differently, when the output is at least valid): these
functions return ``None`` for a correct output and a one-line reason otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom import config as pydicom_config

from fedcodec.client.fuzzing.seeds import IDENTIFYING_VALUES

VOLATILE_TAGS = {
    0x00080018,  # SOPInstanceUID: new for every lossy decompress
    0x00020003,  # MediaStorageSOPInstanceUID
    0x0020000E,  # SeriesInstanceUID: new for every lossy decompress
    0x00082111,  # DerivationDescription: names the coded size, which crafted streams change
    0x00282112,  # LossyImageCompressionRatio: likewise
    0x00082112,  # SourceImageSequence
    0x7FE00010,  # PixelData: compared as decoded arrays
}


@dataclass(frozen=True)
class DicomImage:
    """One written DICOM file, reduced to what must match: its elements and decoded pixels."""

    elements: dict[int, str]
    pixels: np.ndarray | None


def read_strict(path: Path) -> pydicom.Dataset:
    """Parse as strictly as pydicom can: invalid values raise instead of warning."""
    with pydicom_config.strict_reading():
        return pydicom.dcmread(path)


def dicom_image(path: Path) -> DicomImage:
    """Parse ``path`` strictly and decode its pixels (raises on anything unreadable)."""
    ds = read_strict(path)
    elements = {
        int(elem.tag): repr(elem.value)
        for elem in ds.iterall()
        if int(elem.tag) not in VOLATILE_TAGS and not elem.tag.is_private
    }
    pixels = ds.pixel_array.copy() if "PixelData" in ds else None
    return DicomImage(elements, pixels)


def decompressed_images(folder: Path) -> list[DicomImage]:
    """Every file under ``folder`` in series order (folder numbers, then file numbers)."""
    files = sorted(folder.rglob("*.dcm"), key=lambda p: (p.parent.name[:3], p.name))
    return [dicom_image(p) for p in files]


def compare_images(expected: list[DicomImage], folder: Path) -> str | None:
    """``None`` when ``folder`` holds the same images as ``expected``, else what differs."""
    try:
        actual = decompressed_images(folder)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the finding
        return f"output does not parse: {type(exc).__name__}: {str(exc)[:120]}"
    if len(actual) != len(expected):
        return f"{len(actual)} files written, the original gives {len(expected)}"
    for number, (a, b) in enumerate(zip(actual, expected, strict=True)):
        if (a.pixels is None) != (b.pixels is None) or (
            a.pixels is not None and not np.array_equal(a.pixels, b.pixels)
        ):
            return f"file {number}: pixels differ from the original's"
        if a.elements != b.elements:
            changed = sorted(set(a.elements.items()) ^ set(b.elements.items()))
            return f"file {number}: header differs from the original's at {changed[0][0]:08x}"
    return None


def check_compressed(fcz: Path, scratch: Path) -> str | None:
    """A container ``compress`` wrote must decompress and give readable DICOM."""
    from fedcodec.client.compression import decompress_study

    try:
        for path in decompress_study(fcz, scratch):  # faithful to its input, however odd
            for _ in pydicom.dcmread(path).iterall():
                pass
    except Exception as exc:  # noqa: BLE001
        return f"written container does not decompress: {type(exc).__name__}: {str(exc)[:120]}"
    return None


def check_deidentified(output: Path) -> str | None:
    """``deid`` output parses, keeps each input's pixels, and holds no identifying value."""
    for path in sorted(output.rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        for value in IDENTIFYING_VALUES:
            if value in raw:
                return f"{path.name} still holds {value.decode()!r}"
        try:
            pydicom.dcmread(path)
        except Exception as exc:  # noqa: BLE001
            return f"{path.name} does not parse: {type(exc).__name__}: {str(exc)[:120]}"
    return None
