"""The private attributes kept under the Retain Safe Private Option, and the check they must pass.

PS3.15 lets a de-identifier keep private attributes "known to be safe". fedcodec keeps only
acquisition-physics numbers that MR readers need (Siemens mosaic tile count and slice timing,
diffusion b-values and gradient directions, Philips scale slope/intercept), each identified by its
private creator, group and element byte, and each *checked*: the value must be one or more finite
numbers of the expected VR. A free-text or date value in one of these slots is removed. Numbers are
not safe in general (GE stores the acquisition time as a UNIX timestamp in an SL), so nothing is
kept unless it is listed here. Sources: the vendors' conformance statements as collected by
dcm2niix and pydicom's private dictionary.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable

from pydicom.dataelem import DataElement

# (private creator, group, element byte) -> (expected VR, what it is)
SAFE_PRIVATE: dict[tuple[str, int, int], tuple[str, str]] = {
    ("SIEMENS MR HEADER", 0x0019, 0x0A): ("US", "NumberOfImagesInMosaic"),
    ("SIEMENS MR HEADER", 0x0019, 0x0B): ("DS", "SliceMeasurementDuration"),
    ("SIEMENS MR HEADER", 0x0019, 0x0C): ("IS", "B_value"),
    ("SIEMENS MR HEADER", 0x0019, 0x0E): ("FD", "DiffusionGradientDirection"),
    ("SIEMENS MR HEADER", 0x0019, 0x27): ("FD", "B_matrix"),
    ("SIEMENS MR HEADER", 0x0019, 0x28): ("FD", "BandwidthPerPixelPhaseEncode"),
    ("SIEMENS MR HEADER", 0x0019, 0x29): ("FD", "MosaicRefAcqTimes"),
    ("GEMS_PARM_01", 0x0043, 0x39): ("IS", "Slop_int_6..9 (b-value)"),
    ("GEMS_ACQU_01", 0x0019, 0xBB): ("DS", "User data 20 (gradient x)"),
    ("GEMS_ACQU_01", 0x0019, 0xBC): ("DS", "User data 21 (gradient y)"),
    ("GEMS_ACQU_01", 0x0019, 0xBD): ("DS", "User data 22 (gradient z)"),
    ("Philips Imaging DD 001", 0x2001, 0x03): ("FL", "Diffusion B-Factor"),
    ("Philips MR Imaging DD 001", 0x2005, 0x0D): ("FL", "Scale Intercept"),
    ("Philips MR Imaging DD 001", 0x2005, 0x0E): ("FL", "Scale Slope"),
    ("Philips MR Imaging DD 001", 0x2005, 0xB0): ("FL", "Diffusion Direction RL"),
    ("Philips MR Imaging DD 001", 0x2005, 0xB1): ("FL", "Diffusion Direction AP"),
    ("Philips MR Imaging DD 001", 0x2005, 0xB2): ("FL", "Diffusion Direction FH"),
}
SAFE_CREATORS = frozenset(creator for creator, _, _ in SAFE_PRIVATE)
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
# Plausible magnitudes for the listed physics values (b-values, ms, mm, scale slopes). Four or
# eight bytes of text read as a float are usually far outside this range, though not always.
_SMALLEST, _LARGEST = 1e-12, 1e7


def safe_private_rule(creator: str | None, tag: int) -> tuple[str, str] | None:
    """(expected VR, name) if the element at ``tag`` under ``creator`` is on the safe list."""
    if not creator:
        return None
    return SAFE_PRIVATE.get((creator.strip(), tag >> 16, tag & 0xFF))


def checked_safe_element(element: DataElement, vr: str, little_endian: bool) -> DataElement | None:
    """A copy of ``element`` with VR ``vr`` if it holds only finite numbers, else None."""
    value = element.value
    if element.VR == "UN" and isinstance(value, bytes):
        values = _decode_un(value, vr, little_endian)
    elif element.VR == vr:
        values = _as_list(value)
    else:
        values = None
    if not values or not all(_is_finite_number(item, vr) for item in values):
        return None
    return DataElement(element.tag, vr, values if len(values) > 1 else values[0])


def _as_list(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _is_finite_number(item: object, vr: str) -> bool:
    if vr in ("IS", "DS"):
        text = str(item).strip()
        return bool((_INTEGER if vr == "IS" else _NUMBER).match(text)) and math.isfinite(
            float(text)
        )
    if not isinstance(item, int | float) or not math.isfinite(float(item)):
        return False
    return item == 0 or _SMALLEST <= abs(float(item)) <= _LARGEST


def _decode_un(raw: bytes, vr: str, little_endian: bool) -> list | None:
    if vr in _BINARY:
        size = struct.calcsize(_BINARY[vr])
        if not raw or len(raw) % size:
            return None
        order = "<" if little_endian else ">"
        return list(struct.unpack(f"{order}{len(raw) // size}{_BINARY[vr]}", raw))
    try:
        text = raw.decode("ascii").strip("\x00 ")
    except UnicodeDecodeError:
        return None
    return [part.strip() for part in text.split("\\")]
