"""Run codecs over slices and measure them, all in one run on one clock.

Method (what makes the numbers comparable):

- Every codec sees the same slices, in the same order, in the same process; the unsigned
  volumes are prepared once (signed data shifted by :func:`~fedcodec.shared.pixels.to_unsigned`).
- Time is ``time.perf_counter`` around the codec calls only (no metric, check or I/O inside).
  Before a codec is timed it encodes and decodes one slice untimed (warm-up: library loading,
  first-call allocation), which is not in any record.
- A codec that codes slices independently (it keeps :meth:`Codec.encode_volume` /
  :meth:`Codec.decode_volume` from the base class) is timed slice by slice, so each record holds
  that slice's own time. A codec with inter-slice context is timed per stack through
  ``encode_volume`` / ``decode_volume`` and each slice gets the stack time divided by its slices.
- Every decoded pixel is compared with the input: a ``lossless`` codec must be bit-exact, a
  ``near-lossless`` one must stay within its ``max_error`` everywhere. A violation stops the run
  with :class:`GuaranteeViolation` naming the codec and the slice; it is never just a number.
- Sizes are the streams ``encode_volume`` returns (one per slice), nothing else: no container or
  DICOM overhead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from fedcodec.shared import metrics
from fedcodec.shared.benchmark.records import BenchResult, SliceRecord, summarise
from fedcodec.shared.codecs.base import Codec, CodecMode, get_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.sources import SliceStack
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LOSSLESS_CODECS = ["jxl", "j2k", "jpegls", "htj2k", "zstd"]
"""The classical lossless anchors of the project's issues."""
DEFAULT_CODECS = [*LOSSLESS_CODECS[:4], "jpegls:tau=2", "zstd"]
"""What ``fedcodec bench`` runs without ``--codecs``: the lossless anchors and JPEG-LS tau=2."""
LOSSY_POINTS = ["j2k:ratio=8", "j2k:ratio=16", "j2k:ratio=32",
                "jxl:distance=0.5", "jxl:distance=1", "jxl:distance=2"]
"""Rate-distortion points (``fedcodec bench --with-lossy``, and the demo). Not in the defaults:
SSIM and MS-SSIM of every lossy slice cost ~30 ms per 256x256 slice, so on the 1807-slice shared
set these six points take longer than the six defaults together."""
NEURAL_LOSSY_POINTS = ["neural:mode=lossy,psnr=45", "neural:mode=lossy,psnr=50",
                       "neural:mode=lossy,psnr=55"]
"""The default lossy codec (bounded error, rate-controlled) at three clinical PSNR targets, added
by ``fedcodec bench --with-lossy`` next to :data:`LOSSY_POINTS`; not in the demo, whose
classical step would then code every slice with the learned coder three more times."""


class GuaranteeViolation(FedcodecError):
    """A codec reconstructed a slice worse than its declared mode allows."""


def codec_label(codec: str | Codec) -> str:
    """The name a codec has in results: the spec as given, or the instance's own spec/name."""
    return codec if isinstance(codec, str) else str(codec.describe().get("spec", codec.name))


def run_benchmark(
    stacks: Sequence[SliceStack],
    codecs: Sequence[str | Codec],
    *,
    progress: bool = True,
) -> BenchResult:
    """Encode and decode every slice of ``stacks`` with every codec; return all measurements.

    ``codecs`` are specs (``"jpegls:tau=2"``) or codec instances; every spec is resolved before
    any work, so a bad name fails at once. Raises :class:`GuaranteeViolation` when a codec breaks
    its guarantee and :class:`FedcodecError` when it fails on a slice.
    """
    if not stacks:
        raise FedcodecError("nothing to benchmark: no slices")
    if not codecs:
        raise FedcodecError("nothing to benchmark: no codecs")
    labels = [codec_label(c) for c in codecs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise FedcodecError(f"codec listed twice: {repeated[0]}")
    resolved = [get_codec(c) if isinstance(c, str) else c for c in codecs]
    prepared = [(stack, stack.codec_volume()[0]) for stack in stacks]
    slices = sum(s.volume.shape[0] for s in stacks)
    result = BenchResult(labels, slices, sum(s.pixels for s in stacks))
    with _progress_bar(progress) as bar:
        task = bar.add_task("", total=slices * len(resolved))
        for label, codec in zip(labels, resolved):
            bar.update(task, description=label)
            _warm_up(label, codec, prepared[0])
            records: list[SliceRecord] = []
            for stack, volume in prepared:
                for record in _measure_stack(label, codec, stack, volume):
                    records.append(record)
                    bar.advance(task)
            result.records.extend(records)
            result.summaries.append(summarise(label, records))
    return result


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress]:
    bar = Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
    with bar:
        yield bar


def _codes_slices_independently(codec: Codec) -> bool:
    cls = type(codec)
    return cls.encode_volume is Codec.encode_volume and cls.decode_volume is Codec.decode_volume


def _warm_up(label: str, codec: Codec, prepared: tuple[SliceStack, np.ndarray]) -> None:
    stack, volume = prepared
    first = stack.slice_ids[0]
    streams = _call(label, first, "encode", codec.encode_volume, volume[:1], stack.bits)
    _call(label, first, "decode", codec.decode_volume, streams)


def _measure_stack(
    label: str, codec: Codec, stack: SliceStack, volume: np.ndarray
) -> Iterator[SliceRecord]:
    ids = stack.slice_ids
    if _codes_slices_independently(codec):
        for i, slice_id in enumerate(ids):
            image = np.ascontiguousarray(volume[i])
            start = time.perf_counter()
            stream = _call(label, slice_id, "encode", codec.encode, image, stack.bits)
            encoded = time.perf_counter()
            decoded = _call(label, slice_id, "decode", codec.decode, stream)
            done = time.perf_counter()
            yield _record(label, codec, slice_id, stack.bits, image, stream, decoded,
                          1e3 * (encoded - start), 1e3 * (done - encoded))
        return
    codec = codec.with_volume_layout(stack.positions_per_volume)
    start = time.perf_counter()
    streams = _call(label, stack.name, "encode", codec.encode_volume, volume, stack.bits)
    encoded = time.perf_counter()
    decoded = _call(label, stack.name, "decode", codec.decode_volume, streams)
    done = time.perf_counter()
    if len(streams) != len(ids) or len(decoded) != len(ids):
        raise FedcodecError(
            f"codec {label!r} returned {len(streams)} streams / {len(decoded)} slices "
            f"for {len(ids)} slices of {stack.name}"
        )
    encode_ms, decode_ms = 1e3 * (encoded - start) / len(ids), 1e3 * (done - encoded) / len(ids)
    for i, slice_id in enumerate(ids):
        yield _record(label, codec, slice_id, stack.bits, volume[i], streams[i], decoded[i],
                      encode_ms, decode_ms)


def _call(label: str, where: str, action: str, func, *args):  # type: ignore[no-untyped-def]
    """Run a codec call; turn its failure into a one-line error naming codec and slice."""
    try:
        return func(*args)
    except CorruptDataError as exc:
        raise CorruptDataError(f"codec {label!r} failed to {action} {where}: {exc}") from exc
    except FedcodecError as exc:
        raise FedcodecError(f"codec {label!r} failed to {action} {where}: {exc}") from exc
    except Exception as exc:  # a codec library error is a user-facing failure of that codec
        text = " ".join(str(exc).split()) or "no message"
        raise FedcodecError(
            f"codec {label!r} failed to {action} {where}: {type(exc).__name__}: {text}"
        ) from exc


def _record(
    label: str,
    codec: Codec,
    slice_id: str,
    bits: int,
    image: np.ndarray,
    stream: bytes,
    decoded: np.ndarray,
    encode_ms: float,
    decode_ms: float,
) -> SliceRecord:
    decoded = np.asarray(decoded)
    if decoded.shape != image.shape:
        raise CorruptDataError(
            f"codec {label!r} decoded {slice_id} to shape {decoded.shape}, expected {image.shape}"
        )
    exact = bool(np.array_equal(decoded, image))
    error = 0 if exact else int(metrics.max_abs_error(image, decoded))
    recorded = codec.guaranteed_error(stream)
    _check_guarantee(label, codec, slice_id, error, recorded)
    pixels = int(image.size)
    if exact:
        psnr, ssim, ms_ssim = float("inf"), 1.0, 1.0
    else:
        psnr = float(metrics.psnr(image, decoded, bits))
        ssim = float(metrics.ssim(image, decoded, bits))
        ms_ssim = float(metrics.ms_ssim(image, decoded, bits))
    return SliceRecord(
        codec=label,
        slice_id=slice_id,
        mode=codec.mode.value,
        lossless=codec.lossless,
        max_error_bound=codec.max_error if codec.max_error is not None else recorded,
        bits=bits,
        pixels=pixels,
        bytes=len(stream),
        bpp=float(metrics.bits_per_pixel(len(stream), pixels)),
        ratio=float(metrics.compression_ratio(len(stream), pixels, bits)) if stream else math.inf,
        psnr=psnr,
        ssim=ssim,
        ms_ssim=ms_ssim,
        max_abs_error=error,
        encode_ms=encode_ms,
        decode_ms=decode_ms,
    )


def _check_guarantee(label: str, codec: Codec, slice_id: str, error: int,
                     bound: int | None = None) -> None:
    """``bound``: what the stream itself guarantees (:meth:`Codec.guaranteed_error`; a
    rate-controlled coder records it per stream), checked like a declared ``max_error``."""
    if codec.mode is CodecMode.LOSSLESS and error:
        raise GuaranteeViolation(
            f"codec {label!r} is declared lossless but changed {slice_id} "
            f"(max abs error {error})"
        )
    if codec.mode is CodecMode.BOUNDED and codec.max_error is not None and error > codec.max_error:
        raise GuaranteeViolation(
            f"codec {label!r} broke its bound on {slice_id}: "
            f"max abs error {error} > {codec.max_error}"
        )
    if bound is not None and error > bound:
        raise GuaranteeViolation(
            f"codec {label!r} broke the bound its stream records on {slice_id}: "
            f"max abs error {error} > {bound}"
        )
