"""The ``.fcz`` study container: one versioned file per study, codec-agnostic.

The byte layout is documented in ``docs/container-format.md``. Write with
:func:`write_container`, open with :func:`read_container` (streams are read lazily and
CRC-checked one at a time), walk with :func:`iter_streams`.

>>> from fedcodec.shared.container import read_container
>>> container = read_container("study.fcz")            # doctest: +SKIP
>>> container.pixel_streams(0)                          # doctest: +SKIP
"""

from fedcodec.shared.container.header import (
    CodecInfo,
    ContainerHeader,
    HeaderBlob,
    SeriesCoding,
    SeriesEntry,
    SeriesInfo,
)
from fedcodec.shared.container.layout import FORMAT_VERSION, MAGIC, SUPPORTED_VERSIONS
from fedcodec.shared.container.reader import Container, iter_streams, read_container
from fedcodec.shared.container.writer import CodedSeries, CodedStudy, write_container

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "SUPPORTED_VERSIONS",
    "CodecInfo",
    "CodedSeries",
    "CodedStudy",
    "Container",
    "ContainerHeader",
    "HeaderBlob",
    "SeriesCoding",
    "SeriesEntry",
    "SeriesInfo",
    "iter_streams",
    "read_container",
    "write_container",
]
