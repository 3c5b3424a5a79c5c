"""Output transfer syntaxes by short name, and the codec that encodes each compressed one.

A name is ``NAME`` or ``NAME:key=value,...`` like a codec spec. The JPEG family goes through the
codec registry (``get_codec``), so DICOM output uses exactly the codecs the benchmark measures;
the codec's declared mode picks the lossless or the lossy UID:

=========  ======================  =====================================  ======================
name       lossless UID            lossy / near-lossless UID              method (0028,2114)
=========  ======================  =====================================  ======================
explicit   1.2.840.10008.1.2.1     -                                      -
implicit   1.2.840.10008.1.2       -                                      -
deflate    1.2.840.10008.1.2.1.99  -                                      -
rle        1.2.840.10008.1.2.5     -                                      -
jpegls     1.2.840.10008.1.2.4.80  1.2.840.10008.1.2.4.81 (``tau=N``)     ISO_14495_1
j2k        1.2.840.10008.1.2.4.90  1.2.840.10008.1.2.4.91 (``ratio=R``)   ISO_15444_1
htj2k      1.2.840.10008.1.2.4.201 1.2.840.10008.1.2.4.203 (``ratio=R``)  ISO_15444_15
=========  ======================  =====================================  ======================
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import (
    UID,
    HTJ2K,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from fedcodec.shared.codecs.base import Codec, CodecMode, get_codec, parse_codec_spec
from fedcodec.shared.errors import FedcodecError, UnknownNameError

_NATIVE: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "deflate": DeflatedExplicitVRLittleEndian,
    "rle": RLELossless,
}
_CODEC: dict[str, tuple[UID, UID, str]] = {
    "jpegls": (JPEGLSLossless, JPEGLSNearLossless, "ISO_14495_1"),
    "j2k": (JPEG2000Lossless, JPEG2000, "ISO_15444_1"),
    "htj2k": (HTJ2KLossless, HTJ2K, "ISO_15444_15"),
}


@dataclass(frozen=True)
class OutputSyntax:
    """A resolved output transfer syntax."""

    name: str
    spec: str
    uid: UID
    codec: Codec | None = None
    """The registry codec for JPEG-LS / JPEG 2000 / HTJ2K; None for native and RLE."""
    lossy_method: str | None = None
    """Lossy Image Compression Method when the codec is not lossless, else None."""


def transfer_syntax_names() -> list[str]:
    return sorted([*_NATIVE, *_CODEC])


def output_syntax(spec: str) -> OutputSyntax:
    """Resolve ``spec`` (e.g. ``explicit``, ``jpegls:tau=2``, ``j2k:ratio=20``)."""
    name, params = parse_codec_spec(spec)
    name = name.lower()
    if name in _NATIVE:
        if params:
            raise FedcodecError(f"transfer syntax {name!r} takes no parameters (got {spec!r})")
        return OutputSyntax(name, spec, _NATIVE[name])
    if name not in _CODEC:
        raise UnknownNameError(
            f"unknown transfer syntax {name!r}; known: {', '.join(transfer_syntax_names())}"
        )
    lossless_uid, lossy_uid, method = _CODEC[name]
    codec = get_codec(spec)
    if codec.mode is CodecMode.LOSSLESS:
        return OutputSyntax(name, spec, lossless_uid, codec)
    return OutputSyntax(name, spec, lossy_uid, codec, method)
