"""The JSON header of an ``.fcz`` file: what was coded, how, and where each stream lives.

The header is canonical JSON (UTF-8, sorted keys, no spaces, no NaN) so two writers produce the same
bytes for the same study and a human can audit it with ``fedcodec inspect --json``. Parsing
validates every field's type and range and the cross-references between series and streams, so a
crafted header that passes the CRC still cannot make a reader index out of range or allocate an
absurd volume. Readers ignore keys they do not know (later minor additions); the format version
in the preamble changes when a known key changes meaning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fedcodec.shared.container.digests import check_sha256_text
from fedcodec.shared.dicom.series import Series
from fedcodec.shared.errors import CorruptDataError

MODES = ("lossless", "near-lossless", "lossy")
DTYPES = ("uint8", "uint16", "int16")
HEADER_COMPRESSIONS = ("none", "zstd")
MAX_ROWS_COLS = 65535
MAX_SLICES = 1 << 20


@dataclass(frozen=True)
class CodecInfo:
    """The codec that wrote the streams: its spec rebuilds it with ``get_codec``."""

    spec: str
    describe: dict[str, Any] = field(default_factory=dict)
    model_hash: str | None = None
    """For a neural codec, the hash of the weights it reports; ``None`` for classical codecs."""


@dataclass(frozen=True)
class SeriesInfo:
    """A series without its pixels: enough to rebuild :class:`Series` around a decoded volume."""

    series_uid: str
    study_uid: str
    patient_id: str
    description: str
    modality: str
    shape: tuple[int, int, int]
    dtype: str
    """numpy dtype of the stored values (``uint8``, ``uint16`` or ``int16`` when signed)."""
    bits_stored: int
    signed: bool
    offset: int
    """What :func:`~fedcodec.shared.pixels.to_unsigned` added before coding (``2**(bits-1)``)."""
    rescale_slope: float
    rescale_intercept: float
    slice_ids: list[str]
    slice_sources: list[tuple[int, int]]
    part: int = 0
    """Which piece of a SeriesInstanceUID the reader had to split (0 = the whole UID)."""
    mosaic_tiles: list[int] = field(default_factory=list)
    """Per dataset: Siemens mosaic tiles it was split into (0 = not a mosaic); may be empty."""
    slice_rescale: list[tuple[float, float]] = field(default_factory=list)
    """Per slice: (RescaleSlope, RescaleIntercept); may be empty."""
    bits_allocated: int = 16

    @classmethod
    def from_series(cls, series: Series, offset: int) -> SeriesInfo:
        return cls(
            series_uid=series.series_uid,
            study_uid=series.study_uid,
            patient_id=series.patient_id,
            description=series.description,
            modality=series.modality,
            shape=tuple(int(n) for n in series.volume.shape),  # type: ignore[arg-type]
            dtype=str(series.volume.dtype),
            bits_stored=int(series.bits_stored),
            signed=bool(series.signed),
            offset=int(offset),
            rescale_slope=float(series.rescale_slope),
            rescale_intercept=float(series.rescale_intercept),
            slice_ids=list(series.slice_ids),
            slice_sources=[(int(d), int(f)) for d, f in series.slice_sources],
            part=int(getattr(series, "part", 0)),
            mosaic_tiles=[int(n) for n in getattr(series, "mosaic_tiles", [])],
            slice_rescale=[(float(a), float(b)) for a, b in getattr(series, "slice_rescale", [])],
            bits_allocated=int(getattr(series, "bits_allocated", series.volume.dtype.itemsize * 8)),
        )

    @property
    def pixel_count(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    @property
    def raw_pixel_bytes(self) -> int:
        """Size of the stored values as DICOM holds them uncompressed (Bits Allocated)."""
        return (self.pixel_count * self.bits_allocated + 7) // 8


@dataclass(frozen=True)
class HeaderBlob:
    """Where a series' DICOM headers live: one stream holding every dataset of the series."""

    stream: int
    compression: str
    raw_length: int
    datasets: int
    sha256: str | None = None
    """SHA-256 of the uncompressed records (optional; checked when present)."""


@dataclass(frozen=True)
class SeriesCoding:
    """How one series was coded: the codec that reads its streams and the promise it kept.

    A study coded with one codec has this once, at the top of the header. When a profile rule
    gives series different codings (``fedcodec compress --profile auto``), each series whose
    coding differs from the top-level one carries its own (format version 2).
    """

    codec: CodecInfo
    mode: str
    tau: int = 0
    quality: int | None = None


@dataclass(frozen=True)
class SeriesEntry:
    """One series in the header: its description, its pixel streams, its DICOM headers."""

    info: SeriesInfo
    first_stream: int
    stream_count: int
    headers: HeaderBlob
    profile: str | None = None
    """The compression profile that chose this series' coding (``archive``, ``preview``...)."""
    coding: SeriesCoding | None = None
    """This series' own coding when it differs from the header's (format version 2), else None."""
    pixels_sha256: str | None = None
    """SHA-256 of the stored values the streams decode to (optional; checked when present)."""

    @property
    def pixel_streams(self) -> range:
        return range(self.first_stream, self.first_stream + self.stream_count)


@dataclass(frozen=True)
class ContainerHeader:
    """Everything in the JSON header."""

    codec: CodecInfo
    mode: str
    tau: int
    quality: int | None
    profile: str | None
    series: list[SeriesEntry]
    writer: str = ""
    """Software that wrote the file (``fedcodec 0.1.0``), for audits; not interpreted."""

    @property
    def coding(self) -> SeriesCoding:
        """The header-level coding: every series' unless it carries its own."""
        return SeriesCoding(self.codec, self.mode, self.tau, self.quality)

    def coding_of(self, index: int) -> SeriesCoding:
        """How series ``index`` was coded (its own coding, else the header's)."""
        return self.series[index].coding or self.coding

    @property
    def format_version(self) -> int:
        """The lowest format version that can hold this header: 2 once a series has its own
        coding (a version-1 reader would ignore that key and decode with the wrong codec)."""
        return 2 if any(entry.coding is not None for entry in self.series) else 1


def _codec_to_json(codec: CodecInfo) -> dict[str, Any]:
    return {"spec": codec.spec, "describe": codec.describe, "model_hash": codec.model_hash}


def header_to_json(header: ContainerHeader) -> bytes:
    """Canonical JSON bytes of ``header``."""
    doc = {
        "codec": _codec_to_json(header.codec),
        "mode": header.mode,
        "tau": header.tau,
        "quality": header.quality,
        "profile": header.profile,
        "writer": header.writer,
        "series": [_series_to_json(entry) for entry in header.series],
    }
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=str
    ).encode("ascii")


def _series_to_json(entry: SeriesEntry) -> dict[str, Any]:
    doc = _info_to_json(entry)
    doc["profile"] = entry.profile
    if entry.pixels_sha256 is not None:
        doc["pixels_sha256"] = entry.pixels_sha256
    if entry.headers.sha256 is not None:
        doc["dicom_headers"]["sha256"] = entry.headers.sha256
    if entry.coding is not None:
        doc["coding"] = {
            "codec": _codec_to_json(entry.coding.codec),
            "mode": entry.coding.mode,
            "tau": entry.coding.tau,
            "quality": entry.coding.quality,
        }
    return doc


def _info_to_json(entry: SeriesEntry) -> dict[str, Any]:
    info = entry.info
    return {
        "series_uid": info.series_uid,
        "study_uid": info.study_uid,
        "patient_id": info.patient_id,
        "description": info.description,
        "modality": info.modality,
        "shape": list(info.shape),
        "dtype": info.dtype,
        "bits_stored": info.bits_stored,
        "signed": info.signed,
        "offset": info.offset,
        "rescale_slope": info.rescale_slope,
        "rescale_intercept": info.rescale_intercept,
        "slice_ids": list(info.slice_ids),
        "slice_sources": [list(s) for s in info.slice_sources],
        "part": info.part,
        "mosaic_tiles": list(info.mosaic_tiles),
        "slice_rescale": [list(r) for r in info.slice_rescale],
        "bits_allocated": info.bits_allocated,
        "pixel_streams": {"first": entry.first_stream, "count": entry.stream_count},
        "dicom_headers": {
            "stream": entry.headers.stream,
            "compression": entry.headers.compression,
            "raw_length": entry.headers.raw_length,
            "datasets": entry.headers.datasets,
        },
    }


def header_from_json(data: bytes, stream_count: int, version: int = 2) -> ContainerHeader:
    """Parse and validate the header of a file of format ``version``; every stream must belong
    to exactly one series."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CorruptDataError("corrupt header: not valid UTF-8 JSON") from None
    fields = _Fields(doc, "header")
    header = ContainerHeader(
        codec=_codec_from_json(fields.get("codec", dict), "codec"),
        mode=fields.choice("mode", MODES),
        tau=fields.integer("tau", 0, 1 << 16),
        quality=fields.integer("quality", 1, 100, optional=True),
        profile=fields.get("profile", (str, type(None))),
        series=[
            _series_from_json(item, f"series[{i}]", version)
            for i, item in enumerate(fields.get("series", list))
        ],
        writer=fields.get("writer", str),
    )
    _check_stream_ownership(header.series, stream_count)
    return header


def _codec_from_json(obj: Any, where: str) -> CodecInfo:
    codec = _Fields(obj, where)
    model_hash = codec.get("model_hash", (str, type(None)))
    return CodecInfo(codec.get("spec", str), codec.get("describe", dict), model_hash)


def _coding_from_json(obj: Any, where: str) -> SeriesCoding:
    f = _Fields(obj, where)
    return SeriesCoding(
        codec=_codec_from_json(f.get("codec", dict), f"{where}.codec"),
        mode=f.choice("mode", MODES),
        tau=f.integer("tau", 0, 1 << 16),
        quality=f.integer("quality", 1, 100, optional=True),
    )


def _series_from_json(item: Any, where: str, version: int = 2) -> SeriesEntry:
    f = _Fields(item, where)
    profile = f.get("profile", (str, type(None))) if "profile" in f.obj else None
    coding = None
    if "coding" in f.obj:
        if version < 2:
            raise CorruptDataError(
                f"corrupt header: {where}.coding needs format version 2, the file says {version}"
            )
        coding = _coding_from_json(f.obj["coding"], f"{where}.coding")
    shape = f.get("shape", list)
    limits = (MAX_SLICES, MAX_ROWS_COLS, MAX_ROWS_COLS)
    if len(shape) != 3 or not all(
        _is_int(n) and 1 <= n <= top for n, top in zip(shape, limits, strict=False)
    ):
        raise CorruptDataError(f"corrupt header: {where}.shape must be 3 positive integers")
    slices = shape[0]
    bits = f.integer("bits_stored", 1, 16)
    signed = f.get("signed", bool)
    offset = f.integer("offset", 0, 1 << 15)
    if offset != ((1 << (bits - 1)) if signed else 0):
        raise CorruptDataError(f"corrupt header: {where}.offset {offset} does not match bits/sign")
    slice_ids = f.get("slice_ids", list)
    if len(slice_ids) != slices or not all(isinstance(s, str) for s in slice_ids):
        raise CorruptDataError(f"corrupt header: {where}.slice_ids must be {slices} strings")
    blob = _Fields(f.get("dicom_headers", dict), f"{where}.dicom_headers")
    datasets = blob.integer("datasets", 0, MAX_SLICES)
    sources = f.get("slice_sources", list)
    if len(sources) != slices or not all(
        isinstance(s, list)
        and len(s) == 2
        and _is_int(s[0])
        and _is_int(s[1])
        and 0 <= s[0] < datasets
        and 0 <= s[1] < MAX_SLICES
        for s in sources
    ):
        raise CorruptDataError(
            f"corrupt header: {where}.slice_sources must be {slices} [dataset, frame] pairs"
        )
    tiles = f.get("mosaic_tiles", list)
    if len(tiles) not in (0, datasets) or not all(
        _is_int(n) and 0 <= n <= MAX_ROWS_COLS for n in tiles
    ):
        raise CorruptDataError(
            f"corrupt header: {where}.mosaic_tiles must be empty or {datasets} integers"
        )
    rescale = f.get("slice_rescale", list)
    if len(rescale) not in (0, slices) or not all(
        isinstance(r, list) and len(r) == 2 and all(_is_number(v) for v in r) for r in rescale
    ):
        raise CorruptDataError(
            f"corrupt header: {where}.slice_rescale must be empty or {slices} [slope, intercept]"
        )
    bits_allocated = f.integer("bits_allocated", 1, 16)
    if bits_allocated not in (1, 8, 16) or bits_allocated < bits:
        raise CorruptDataError(
            f"corrupt header: {where}.bits_allocated {bits_allocated} does not fit {bits} bits"
        )
    streams = _Fields(f.get("pixel_streams", dict), f"{where}.pixel_streams")
    info = SeriesInfo(
        series_uid=f.get("series_uid", str),
        study_uid=f.get("study_uid", str),
        patient_id=f.get("patient_id", str),
        description=f.get("description", str),
        modality=f.get("modality", str),
        shape=(shape[0], shape[1], shape[2]),
        dtype=f.choice("dtype", DTYPES),
        bits_stored=bits,
        signed=signed,
        offset=offset,
        rescale_slope=f.number("rescale_slope"),
        rescale_intercept=f.number("rescale_intercept"),
        slice_ids=slice_ids,
        slice_sources=[(s[0], s[1]) for s in sources],
        part=f.integer("part", 0, MAX_SLICES),
        mosaic_tiles=tiles,
        slice_rescale=[(float(a), float(b)) for a, b in rescale],
        bits_allocated=bits_allocated,
    )
    return SeriesEntry(
        pixels_sha256=check_sha256_text(f.obj.get("pixels_sha256"), f"{where}.pixels_sha256"),
        profile=profile,
        coding=coding,
        info=info,
        first_stream=streams.integer("first", 0, 1 << 32),
        stream_count=streams.integer("count", 0, 1 << 32),
        headers=HeaderBlob(
            stream=blob.integer("stream", 0, 1 << 32),
            compression=blob.choice("compression", HEADER_COMPRESSIONS),
            raw_length=blob.integer("raw_length", 0, 1 << 62),
            datasets=datasets,
            sha256=check_sha256_text(blob.obj.get("sha256"), f"{where}.dicom_headers.sha256"),
        ),
    )


def _check_stream_ownership(series: list[SeriesEntry], stream_count: int) -> None:
    owner: list[int | None] = [None] * stream_count
    for index, entry in enumerate(series):
        last = entry.first_stream + entry.stream_count
        if last > stream_count:  # checked before the range is walked: a forged count is huge
            raise CorruptDataError(
                f"corrupt header: series[{index}] names streams up to {last - 1}, "
                f"the file has {stream_count}"
            )
        wanted = [entry.headers.stream, *entry.pixel_streams]
        for stream in wanted:
            if stream >= stream_count:
                raise CorruptDataError(
                    f"corrupt header: series[{index}] names stream {stream}, "
                    f"the file has {stream_count}"
                )
            if owner[stream] is not None:
                raise CorruptDataError(f"corrupt header: stream {stream} is claimed twice")
            owner[stream] = index
    if None in owner:
        raise CorruptDataError(f"corrupt header: stream {owner.index(None)} belongs to no series")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in an .fcz header")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Fields:
    """Typed access to one JSON object with one-line errors naming the field."""

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise CorruptDataError(f"corrupt header: {where} must be an object")
        self.obj = obj
        self.where = where

    def get(self, key: str, kind: Any) -> Any:
        if key not in self.obj:
            raise CorruptDataError(f"corrupt header: {self.where}.{key} is missing")
        value = self.obj[key]
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            raise CorruptDataError(f"corrupt header: {self.where}.{key} has the wrong type")
        if not isinstance(value, kind):
            raise CorruptDataError(f"corrupt header: {self.where}.{key} has the wrong type")
        return value

    def integer(self, key: str, low: int, high: int, *, optional: bool = False) -> Any:
        value = self.get(key, (int, type(None)) if optional else int)
        if value is not None and not low <= value <= high:
            raise CorruptDataError(
                f"corrupt header: {self.where}.{key} = {value} is outside {low}..{high}"
            )
        return value

    def number(self, key: str) -> float:
        try:
            return float(self.get(key, (int, float)))
        except OverflowError:
            raise CorruptDataError(f"corrupt header: {self.where}.{key} is too large") from None

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.get(key, str)
        if value not in allowed:
            raise CorruptDataError(
                f"corrupt header: {self.where}.{key} = {value[:40]!r} is not one of {allowed}"
            )
        return value


def _as_tuple(kind: Any) -> tuple[Any, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
