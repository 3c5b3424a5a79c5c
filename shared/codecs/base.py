"""The codec contract and the registry by name.

A codec turns one 2-D image of non-negative integers into bytes and back. It declares what it
guarantees: ``LOSSLESS`` (bit-exact), ``BOUNDED`` (every pixel within ``max_error``) or ``LOSSY``.
Volumes go through :meth:`Codec.encode_volume`, one stream per slice, so a codec with inter-slice
context (the neural one) can condition slice *i* on slice *i-1* while the benchmark still sees
per-slice sizes. The benchmark, the CLI, DICOM output and the container all call codecs through
this module only; none of them knows a codec by its class.

A codec is chosen by a *spec*: ``NAME`` or ``NAME:key=value,...`` (``jpegls:tau=2``,
``j2k:ratio=16``, ``jxl:effort=7``). Values are parsed as int, then float, then kept as text.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from fedcodec.shared.errors import FedcodecError, UnknownNameError


class CodecMode(enum.Enum):
    """What a codec guarantees about its reconstruction."""

    LOSSLESS = "lossless"
    BOUNDED = "near-lossless"
    LOSSY = "lossy"


class Codec(ABC):
    """One image codec. Subclasses set ``name`` and implement ``encode``/``decode``.

    ``encode`` takes a 2-D ``uint8`` or ``uint16`` array and ``bits``, the real bit depth of the
    data (e.g. 12 for 12-bit MR stored in 16 bits); signed data are offset to non-negative by the
    caller (see :func:`fedcodec.shared.pixels.to_unsigned`). ``decode`` returns the array with the
    dtype and shape that were encoded.
    """

    name: ClassVar[str]
    mode: CodecMode = CodecMode.LOSSLESS
    max_error: int | None = 0
    """0 for lossless, tau for bounded, None for lossy."""

    def __init__(self, **params: Any) -> None:
        if params:
            raise FedcodecError(f"codec {self.name!r} takes no parameter {sorted(params)[0]!r}")

    @property
    def lossless(self) -> bool:
        return self.mode is CodecMode.LOSSLESS

    @abstractmethod
    def encode(self, image: np.ndarray, bits: int) -> bytes:
        """Compress one 2-D image of non-negative integers with ``bits`` significant bits."""

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decompress what :meth:`encode` produced; raise CorruptDataError on a bad stream."""

    def encode_volume(self, volume: np.ndarray, bits: int) -> list[bytes]:
        """Compress a (slices, rows, cols) stack to one stream per slice.

        The default codes slices independently; a codec with inter-slice context overrides this
        (and :meth:`decode_volume`) and may make stream *i* depend on the streams before it.
        """
        return [self.encode(np.ascontiguousarray(s), bits) for s in volume]

    def with_volume_layout(self, positions_per_volume: int | None) -> Codec:
        """This codec told how a series' slices form volumes (slice positions per volume, from
        the DICOM headers; None when unknown). Codecs without inter-slice context ignore it."""
        return self

    def decode_volume(self, streams: Sequence[bytes]) -> np.ndarray:
        """Inverse of :meth:`encode_volume`."""
        return np.stack([self.decode(s) for s in streams])

    def guaranteed_error(self, stream: bytes) -> int | None:
        """The largest per-pixel error ``stream`` guarantees (0 = exact), None for no bound.

        Fixed by the configuration for most codecs; a rate-controlled bounded-error codec
        records the bound it chose in each stream and reads it back here. The benchmark checks
        every slice against it and the DICOM writer states it.
        """
        return self.max_error if self.mode is not CodecMode.LOSSY else None

    def describe(self) -> dict[str, Any]:
        """Parameters that identify this configuration (for results files and containers)."""
        return {"name": self.name, "mode": self.mode.value, "max_error": self.max_error}


_REGISTRY: dict[str, Callable[..., Codec]] = {}
_MODE_ROUTES: dict[tuple[str, str], str] = {}
"""(name, mode) -> the registered codec that implements that mode of the family ``name``."""


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Class decorator: make ``cls`` available as ``get_codec(cls.name)``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"codec name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def register_mode_route(name: str, mode: str, target: str) -> None:
    """Let ``NAME:mode=MODE,...`` build codec ``target`` with the same parameters.

    One family name can then cover modes that live in different modules: ``neural`` is the
    learned lossless / near-lossless coder, ``neural:mode=lossy`` its rate-controlled
    bounded-error form (``neural-bounded``), while ``neural:mode=hyperprior`` and the retired
    ``neural:mode=hybrid`` (decode only) are served by ``neural-lossy``.
    """
    _MODE_ROUTES[(name, mode)] = target


def _load_builtin_codecs() -> None:
    """Import the modules that register codecs (import has the side effect of registering)."""
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


_BUILTIN_MODULES: list[str] = [
    "fedcodec.shared.codecs.jpegls",
    "fedcodec.shared.codecs.jpeg2000",
    "fedcodec.shared.codecs.htj2k",
    "fedcodec.shared.codecs.jpegxl",
    "fedcodec.shared.codecs.zstd",
    "fedcodec.shared.neural.codec",
    "fedcodec.shared.neural.bounded_lossy",
    "fedcodec.shared.neural.progressive",
    "fedcodec.shared.learned_lossy.codec",
    "fedcodec.shared.learned_lossy.roi_codec",
]


def codec_names() -> list[str]:
    """Every registered codec name, sorted."""
    _load_builtin_codecs()
    return sorted(_REGISTRY)


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_codec_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``NAME:key=value,...`` into the name and typed parameters."""
    name, _, rest = spec.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise FedcodecError(f"bad codec spec {spec!r}: expected NAME:key=value,...")
        params[key.strip()] = _parse_value(value.strip())
    return name, params


def get_codec(spec: str) -> Codec:
    """Build the codec a spec names; an unknown name is a one-line error listing the known ones."""
    name, params = parse_codec_spec(spec)
    _load_builtin_codecs()
    name = _MODE_ROUTES.get((name, str(params.get("mode", ""))), name)
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown codec {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    try:
        return _REGISTRY[name](**params)
    except TypeError as exc:
        raise FedcodecError(f"bad parameters for codec {name!r}: {exc}") from None
