"""Checks every classical codec applies at its edges, so each fails the same way.

Image libraries fail in their own dialects (``ValueError``, ``RuntimeError``, library-specific
error classes, or, for OpenJPH, an exception that Cython prints and swallows while a half-decoded
image is returned). The codecs funnel all of that through here: bad *input* to ``encode`` is a
:class:`FedcodecError`, a bad *stream* given to ``decode`` is a :class:`CorruptDataError`, each
with one line that names the codec.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from fedcodec.shared.errors import CorruptDataError, FedcodecError


def dtype_for_bits(bits: int) -> np.dtype:
    """The one dtype an image of ``bits`` significant bits travels in (as ``to_unsigned`` makes)."""
    return np.dtype(np.uint8) if bits <= 8 else np.dtype(np.uint16)


def check_image(image: np.ndarray, bits: int, codec: str) -> np.ndarray:
    """Return ``image`` as a C-contiguous little-endian array, or raise FedcodecError.

    The dtype must be the one :func:`dtype_for_bits` names: decoders of bare codestreams
    (JPEG-LS, J2K, HTJ2K, JPEG XL) return ``uint8`` for up to 8 bits and ``uint16`` above, so
    accepting ``uint16`` with ``bits=8`` would break "decode returns the dtype encoded".
    """
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 1 <= bits <= 16:
        raise FedcodecError(f"{codec}: bit depth must be an integer in 1..16, got {bits!r}")
    image = np.asarray(image)
    if image.ndim != 2:
        raise FedcodecError(f"{codec}: expected a 2-D image, got shape {image.shape}")
    if image.size == 0:
        raise FedcodecError(f"{codec}: image is empty (shape {image.shape})")
    expected = dtype_for_bits(int(bits))
    if image.dtype.kind != "u" or image.dtype.itemsize != expected.itemsize:
        raise FedcodecError(
            f"{codec}: a {bits}-bit image must be {expected.name}, got {image.dtype}"
            " (convert with fedcodec.shared.pixels.to_unsigned)"
        )
    image = np.ascontiguousarray(image, dtype=expected.newbyteorder("<"))
    peak = int(image.max())
    if peak >= 1 << bits:
        raise FedcodecError(f"{codec}: pixel value {peak} does not fit {bits} bits")
    return image


def check_decoded(array: Any, codec: str) -> np.ndarray:
    """Accept only what an encoder of this module can have produced: a 2-D uint8/uint16 image."""
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.size == 0:
        shape = getattr(array, "shape", None)
        raise CorruptDataError(f"{codec} stream does not hold one 2-D grey image (got {shape})")
    if array.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise CorruptDataError(f"{codec} stream decodes to {array.dtype}, not uint8/uint16")
    return array


def check_number(
    codec: str, key: str, value: Any, low: float, high: float, *, integer: bool
) -> int | float:
    """Validate one numeric codec parameter from a spec (``jpegls:tau=2``)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise FedcodecError(
            f"codec {codec!r}: {key} must be {kind} in {low}..{high}, got {value!r}"
        )
    return int(value) if integer else float(value)


def optional_number(codec: str, key: str, value: Any, low: float, high: float) -> float | None:
    """Like :func:`check_number` for an optional real parameter (``None`` when not given)."""
    if value is None:
        return None
    return float(check_number(codec, key, value, low, high, integer=False))


def require_end_marker(data: bytes, codec: str) -> None:
    """A JPEG-LS stream ends with ``FFD9`` (EOI); a cut stream does not.

    CharLS already fails on most truncations; this makes the message say so. Bit flips inside
    the entropy-coded data cannot always be detected in a bare codestream (it has no checksum);
    the container's checksum is what catches those.
    """
    if len(data) < 2 or data[-2:] != b"\xff\xd9":
        raise CorruptDataError(f"{codec} stream is truncated (no end-of-codestream marker)")


def as_bytes(data: Any, codec: str) -> bytes:
    """Accept bytes-like input to ``decode``; anything else is a corrupt stream."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise CorruptDataError(f"{codec} stream must be bytes, got {type(data).__name__}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


@contextmanager
def library_errors_as_corrupt(codec: str) -> Iterator[None]:
    """Turn any library failure inside the block into one CorruptDataError.

    Also catches exceptions a Cython callback reports through ``sys.unraisablehook`` instead of
    raising (imagecodecs' HTJ2K copy loop does this on damaged streams), which would otherwise
    leave a half-decoded image and a traceback on stderr, and those its error handler prints
    through ``sys.excepthook`` (a stray ``RuntimeError: ojph error`` line before ours). The hook is process-wide, so two
    threads decoding at once could see each other's reports: that errs towards rejecting a
    stream, never towards accepting a damaged one.
    """
    swallowed: list[BaseException] = []
    previous_hook = sys.unraisablehook

    def record(report: Any) -> None:
        if report.exc_value is not None:
            swallowed.append(report.exc_value)

    def record_printed(kind: Any, value: BaseException, trace: Any) -> None:
        swallowed.append(value)  # an error C code printed with PyErr_Print (OpenJPH's handler)

    previous_excepthook = sys.excepthook
    sys.unraisablehook = record
    sys.excepthook = record_printed
    try:
        yield
    except FedcodecError:
        raise
    except Exception as exc:
        raise CorruptDataError(f"{codec} stream is corrupt: {_one_line(exc)}") from None
    finally:
        sys.unraisablehook = previous_hook
        sys.excepthook = previous_excepthook
    if swallowed:
        raise CorruptDataError(f"{codec} stream is corrupt: {_one_line(swallowed[0])}")
