"""Siemens private headers: the mosaic tile count and the slice normal of a mosaic image.

Siemens stores an EPI volume as one *mosaic* image (tiles in a square grid). How many tiles hold
slices is in the private tag (0019,xx0A) NumberOfImagesInMosaic and, always, in the CSA image
header (0029,xx10), a small binary "SV10" (CSA2) table of named string values. Older anonymisers
drop (0019,xx0A) (the edge12 files), so both are read. CSA1 headers (pre-2004 software) are not
parsed; such files are kept whole when they lack (0019,xx0A).
"""

from __future__ import annotations

import struct

import numpy as np
import pydicom

_MAX_TAGS = 1000
_MAX_ITEMS = 1000


def _private_value(ds: pydicom.Dataset, group: int, creator: str, offset: int) -> object | None:
    try:
        return ds.private_block(group, creator)[offset].value
    except (KeyError, ValueError):
        return None


def parse_csa2(blob: bytes) -> dict[str, list[str]]:
    """Name -> string values of a CSA2 ("SV10") header; {} if it is not one or is damaged."""
    if len(blob) < 16 or blob[:4] != b"SV10":
        return {}
    (n_tags,) = struct.unpack_from("<I", blob, 8)
    if not 0 < n_tags <= _MAX_TAGS:
        return {}
    tags: dict[str, list[str]] = {}
    pos = 16
    try:
        for _ in range(n_tags):
            name = blob[pos : pos + 64].split(b"\0", 1)[0].decode("latin-1")
            (n_items,) = struct.unpack_from("<i", blob, pos + 76)
            pos += 84
            if not 0 <= n_items <= _MAX_ITEMS:
                return tags
            values = []
            for _ in range(n_items):
                (length,) = struct.unpack_from("<i", blob, pos + 4)
                pos += 16
                if length < 0 or pos + length > len(blob):
                    return tags
                text = blob[pos : pos + length].split(b"\0", 1)[0].decode("latin-1").strip()
                if text:
                    values.append(text)
                pos += (length + 3) // 4 * 4
            tags[name] = values
    except struct.error:
        pass
    return tags


def csa_image_header(ds: pydicom.Dataset) -> dict[str, list[str]]:
    """The parsed CSA image header (0029,xx10), or {} when absent."""
    blob = _private_value(ds, 0x0029, "SIEMENS CSA HEADER", 0x10)
    return parse_csa2(bytes(blob)) if isinstance(blob, bytes | bytearray) else {}


def _first_int(values: object) -> int | None:
    if isinstance(values, bytes | bytearray):
        return struct.unpack("<H", values[:2])[0] if len(values) >= 2 else None
    if isinstance(values, list | tuple | pydicom.multival.MultiValue):
        values = values[0] if len(values) else None
    try:
        return int(float(values)) if values is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def is_mosaic(ds: pydicom.Dataset) -> bool:
    """ImageType says MOSAIC (Siemens marks every mosaic this way)."""
    return "MOSAIC" in [str(v).upper() for v in (ds.get("ImageType") or [])]


def mosaic_tile_count(ds: pydicom.Dataset, csa: dict[str, list[str]] | None = None) -> int | None:
    """NumberOfImagesInMosaic from (0019,xx0A) or the CSA image header; None if unknown."""
    count = _first_int(_private_value(ds, 0x0019, "SIEMENS MR HEADER", 0x0A))
    if not count:
        csa = csa_image_header(ds) if csa is None else csa
        count = _first_int(csa.get("NumberOfImagesInMosaic"))
    return count if count and count > 0 else None


def csa_slice_normal(csa: dict[str, list[str]]) -> np.ndarray | None:
    """SliceNormalVector of the CSA image header: the direction in which mosaic tiles advance."""
    values = csa.get("SliceNormalVector", [])
    try:
        normal = np.array([float(v) for v in values[:3]], dtype=float)
    except ValueError:
        return None
    return normal if normal.shape == (3,) and np.linalg.norm(normal) > 0.5 else None
