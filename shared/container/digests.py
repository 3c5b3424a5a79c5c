"""SHA-256 digests a container records of what it decodes to, so a decoder cannot lie quietly.

CRC-32s catch accidental damage of each stream. They cannot catch a stream that was changed
*and* given a matching CRC (a buggy writer, a hand edit), nor a decoder that returns different
values on another machine: such a stream often still decodes, to other pixels. So the writer
records, per series, the SHA-256 of the DICOM header records (before compression) and of the
stored values the decoder gave back when ``compress`` verified them; ``decompress`` and
``inspect --verify`` recompute both and refuse any difference. Both keys are optional: files
written before they existed are read as before (CRCs only).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from fedcodec.shared.errors import CorruptDataError

_HEX = re.compile(r"^[0-9a-f]{64}$")


def pixels_sha256(values: np.ndarray, context: str = "") -> str:
    """Digest of stored values (shape, dtype, little-endian C-order bytes) and ``context``.

    ``context`` is the canonical JSON of the series description the values are written with
    (bits, sign, slice order, rescale...), so a header edit that would change the DICOM written
    around unchanged pixels is caught by the same comparison.
    """
    array = np.ascontiguousarray(values)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    digest = hashlib.sha256(f"{array.dtype.str[1:]}{list(array.shape)}".encode())
    digest.update(context.encode("utf-8"))
    digest.update(little.tobytes())
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256_text(value: object, where: str) -> str | None:
    """A header field that must be ``None`` or 64 lowercase hex digits."""
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX.match(value):
        raise CorruptDataError(f"corrupt header: {where} must be a SHA-256 in hex")
    return value


def require_digest(expected: str | None, actual: str, what: str) -> None:
    """Refuse ``what`` when a recorded digest exists and differs."""
    if expected is not None and expected != actual:
        raise CorruptDataError(
            f"{what} differ from what was coded (SHA-256 {actual[:12]}, "
            f"recorded {expected[:12]}): the container was altered or the decoder misbehaves"
        )
