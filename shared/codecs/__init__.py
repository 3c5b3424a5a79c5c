"""Every codec, classical or neural, behind one contract and found by name.

>>> from fedcodec.shared.codecs import get_codec, codec_names
>>> codec = get_codec("jpegls:tau=2")
"""

from fedcodec.shared.codecs.base import (
    Codec,
    CodecMode,
    codec_names,
    get_codec,
    parse_codec_spec,
    register_codec,
    register_mode_route,
)

__all__ = [
    "Codec",
    "CodecMode",
    "codec_names",
    "get_codec",
    "parse_codec_spec",
    "register_codec",
    "register_mode_route",
]
