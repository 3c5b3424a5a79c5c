"""Frames of stored values -> Pixel Data bytes for each output transfer syntax.

Native syntaxes write the stored values little-endian in Bits Allocated (signed values as
sign-extended two's complement, unused high bits of unsigned values zero). RLE uses pydicom's
own encoder. JPEG-LS / JPEG 2000 / HTJ2K frames are encoded by the registry codec and
encapsulated one fragment per frame with a Basic Offset Table.

Signed data (Pixel Representation 1) in codestreams:

* JPEG-LS has no notion of sign. DICOM decoders read its samples as the two's-complement *bit
  pattern* at the codestream precision and sign-extend from its top bit, so a lossless frame is
  coded as ``value & (2**BitsStored - 1)`` with ``bits = BitsStored`` (-1 in 12 bits is 4095).
  Near-lossless coding of that pattern could move 2047 to pattern 2048 = -2048, so signed
  near-lossless frames are coded as the full Bits Allocated pattern (wrap point +-32768, far from
  any 12-bit value) and the file declares Bits Stored = Bits Allocated: every value stays within
  tau, and values just past the 12-bit range after decoding are representable.
* JPEG 2000 / HTJ2K codestreams can say "signed" (Ssiz bit 7), and that is what DICOM expects
  for Pixel Representation 1. The codec interface takes unsigned samples, so the frame is coded
  as ``value + 2**(bits-1)``; the encoder's DC level shift subtracts exactly that again, so the
  codestream is bit-for-bit the signed codestream of the values once Ssiz is flagged signed.
  Lossy decoding then clamps at the signed range instead of wrapping around it.

Bits Stored in the output equals the codestream precision. A codec that ignores ``bits`` (the
HTJ2K encoder always writes the container's 16 bits) therefore yields Bits Stored 16; the values
are unchanged, and lossy overshoot above ``2**BitsStored - 1`` cannot wrap when read back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders import RLELosslessEncoder

from fedcodec.shared.codecs.base import Codec, CodecMode
from fedcodec.shared.dicom.stored_values import stored_pattern
from fedcodec.shared.errors import FedcodecError


@dataclass(frozen=True)
class EncodedPixels:
    """Pixel Data and the pixel attributes it must be declared with."""

    data: bytes
    encapsulated: bool
    bits_stored: int
    compressed_bytes: int
    """Bytes of codestream (or native data) before encapsulation, for the compression ratio."""


def native_pixel_data(frames: np.ndarray, bits_allocated: int, signed: bool) -> bytes:
    """Little-endian native Pixel Data, padded to even length."""
    dtype = ("<i" if signed else "<u") + str(bits_allocated // 8)
    data = np.ascontiguousarray(frames).astype(dtype).tobytes()
    return data + b"\0" if len(data) % 2 else data


def rle_pixel_data(
    frames: np.ndarray, bits_allocated: int, bits_stored: int, signed: bool
) -> EncodedPixels:
    """DICOM RLE Lossless, one pydicom-encoded fragment per frame."""
    dtype = np.dtype(("i" if signed else "u") + str(bits_allocated // 8))
    encoded = [
        RLELosslessEncoder.encode(
            np.ascontiguousarray(frame).astype(dtype),
            rows=frame.shape[0],
            columns=frame.shape[1],
            samples_per_pixel=1,
            bits_allocated=bits_allocated,
            bits_stored=bits_stored,
            pixel_representation=int(signed),
            photometric_interpretation="MONOCHROME2",
            number_of_frames=1,
        )
        for frame in frames
    ]
    data = encapsulate(encoded, has_bot=True)
    return EncodedPixels(data, True, bits_stored, sum(map(len, encoded)))


def codestream_precision(stream: bytes) -> int | None:
    """Sample precision of a JPEG-LS (SOF55) or JPEG 2000 / HTJ2K (SIZ) codestream."""
    siz = stream.find(b"\xff\x51")
    if stream[:2] == b"\xff\x4f" and siz >= 0 and len(stream) > siz + 40:
        return (stream[siz + 40] & 0x7F) + 1
    sof = stream.find(b"\xff\xf7")
    if stream[:2] == b"\xff\xd8" and sof >= 0 and len(stream) > sof + 4:
        return stream[sof + 4]
    return None


def _precisions(streams: list[bytes], codec: Codec) -> set[int]:
    found = {codestream_precision(s) for s in streams}
    if None in found:
        raise FedcodecError(f"codec {codec.name!r} wrote something that is not a codestream")
    return found  # type: ignore[return-value]


def _set_signed(stream: bytes) -> bytes:
    """Flag the (single) component of a J2K/HTJ2K codestream as signed in its SIZ Ssiz byte."""
    siz = stream.find(b"\xff\x51")
    if stream[:2] != b"\xff\x4f" or siz != 2:
        raise FedcodecError("J2K codestream does not start with SOC, SIZ")
    patched = bytearray(stream)
    patched[siz + 40] |= 0x80
    return bytes(patched)


def codec_pixel_data(
    frames: np.ndarray,
    codec: Codec,
    bits_allocated: int,
    bits_stored: int,
    signed: bool,
    signed_codestream: bool,
) -> EncodedPixels:
    """Encode every frame with ``codec`` and encapsulate; see the module docstring on signs.

    ``signed_codestream`` says the format can flag samples as signed (JPEG 2000, HTJ2K);
    JPEG-LS cannot. The declared Bits Stored is the codestream precision when they differ.
    """
    lossless = codec.mode is CodecMode.LOSSLESS
    if not signed:
        streams = _encode_all(codec, frames, bits_stored, _unsigned_samples)
        precision = max(_precisions(streams, codec))
        declared = max(bits_stored, precision)
    elif signed_codestream or lossless:
        samples = _offset_samples if signed_codestream else _pattern_samples
        first = _encode_all(codec, frames[:1], bits_stored, samples)
        precision = max(_precisions(first, codec))
        if precision == bits_stored:
            streams = first + _encode_all(codec, frames[1:], bits_stored, samples)
        else:  # the codec ignored ``bits``: code at the precision it writes
            streams = _encode_all(codec, frames, precision, samples)
        if _precisions(streams, codec) != {precision} or precision > bits_allocated:
            raise FedcodecError(
                f"codec {codec.name!r} wrote precision {precision} for {bits_stored}-bit data"
            )
        if signed_codestream:
            streams = [_set_signed(s) for s in streams]
        declared = precision
    else:  # near-lossless JPEG-LS of signed data: full-width pattern, no wrap at +-2**(bits-1)
        streams = _encode_all(codec, frames, bits_allocated, _pattern_samples)
        if _precisions(streams, codec) != {bits_allocated}:
            raise FedcodecError(f"codec {codec.name!r} ignored the {bits_allocated}-bit precision")
        declared = bits_allocated
    return EncodedPixels(encapsulate(streams, has_bot=True), True, declared, sum(map(len, streams)))


def _unsigned_samples(frame: np.ndarray, bits: int) -> np.ndarray:
    return frame


def _pattern_samples(frame: np.ndarray, bits: int) -> np.ndarray:
    return stored_pattern(frame, bits)


def _offset_samples(frame: np.ndarray, bits: int) -> np.ndarray:
    """x + 2**(bits-1): what a J2K encoder's DC level shift turns back into x, so the codestream
    of these unsigned samples *is* the signed codestream of x once Ssiz says signed."""
    dtype = np.uint8 if bits <= 8 else np.uint16
    return (frame.astype(np.int32) + (1 << (bits - 1))).astype(dtype)


def _encode_all(codec: Codec, frames: np.ndarray, bits: int, samples_of) -> list[bytes]:
    streams = []
    for frame in frames:
        samples = np.ascontiguousarray(samples_of(frame, bits))
        try:
            streams.append(bytes(codec.encode(samples, bits)))
        except FedcodecError:
            raise
        except Exception as exc:
            raise FedcodecError(f"codec {codec.name!r} failed to encode a frame: {exc}") from None
    return streams
