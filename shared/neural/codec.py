"""The ``neural`` codec: learned lossless / near-lossless coding of MR slices and volumes.

Specs::

    neural                                 lossless (same as neural:mode=lossless)
    neural:mode=near-lossless,tau=2        every pixel within 2 grey levels (tau >= 1)
    neural:period=30                       30 slices per volume (time series / diffusion);
                                           default: detected from the pixels; 0 or 1 = none
    neural:interslice=0                    code every slice of a volume alone
    neural:interslice=2                    always use the references (no per-slice check)
    neural:fallback=0                      the learned coder alone (no classical fallback)
    neural:fallback=2                      fallback candidates include JPEG XL effort 9
    neural:adapt=0                         no encode-time adaptation (0xA1 streams only)
    neural:truncate=0                      no value range (tables not truncated to it)
    neural:meanfit=0                       no least-squares mean corrections
    neural:groupscale=0                    one scale offset per slice (none per group)
    neural:tau=40,coarse=0.7               level bounds: pyramid level l within
                                           floor(40 * 0.7**l), level 0 (and the guarantee)
                                           40 (0xAA, :mod:`.level_bounds`; the default of
                                           neural:mode=lossy for psnr= / bpp= / ratio=)
    neural:restart=32                      an independent chain every 32 slices (0 = never,
                                           the default): chains code on both cores
    neural:weights=neural_v1               another model: a shipped one by name, a weights
                                           file or a models:/ URI (default: the newest shipped,
                                           neural_v2, or $FEDCODEC_NEURAL_WEIGHTS)

Every stream names its model (the first bytes of the model id); a decoder uses the shipped model
with that id when its own differs, so streams written by an older default keep decoding.

``encode`` codes one slice alone. ``encode_volume`` conditions slice *i* on slice *i-1* and, for a
multi-volume series, on slice *i-period*; stream *i* then needs the streams it names (always
earlier ones) to decode, so a volume decodes in order within each chain of dependent slices;
independent chains (and the volumes of ``decode_volumes``) run on worker processes
(:mod:`.chains`). See docs/neural-codec.md.

Encoder-side choices per slice (the decoder just follows what each stream says):

* **encode-time adaptation** (``adapt=1``, the default): the slice's scale bins move by the
  offset with the shortest code, written in the stream (0xA4) when it saves its byte; with it,
  the slice's value range truncates the tables (``truncate=1``, :mod:`.truncation`), large
  pyramid groups get a least-squares correction of the network's mean (``meanfit=1``,
  :mod:`.mean_fit`) and groups whose best offset differs their own (``groupscale=1``), each
  written (0xA8) only when it pays;

* **references only when they pay** (``interslice=1``, the default): a slice that has
  references is also coded alone, and the smaller stream is kept, so a slice coded with
  references is never larger than the same slice coded alone;
* **never worse than classical** (``fallback=1``, the default): the slice also goes through the
  classical candidates of :mod:`.fallback`, and a smaller classical stream replaces the learned
  one (recognised on decoding by its own signature).
"""

from __future__ import annotations

import copy
import itertools
import os
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fedcodec.shared.codecs.base import Codec, CodecMode, register_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.neural.chains import chains, run_jobs, worker_count
from fedcodec.shared.neural.fallback import decode_classical, is_classical, smaller_classical
from fedcodec.shared.neural.adaptive_encoder import (
    encode_refinement_adaptive,
    encode_slice_adaptive,
)
from fedcodec.shared.neural.slice_coder import (
    EntropyModels,
    SliceParams,
    decode_slice,
    encode_slice,
)
from fedcodec.shared.neural.stream_format import COPY_MAGIC, StreamHeader, pack, unpack
from fedcodec.shared.neural.tiles import (
    CroppedReferences,
    TileGrid,
    is_tiled,
    needs_tiles,
    pack_tiled,
    unpack_tiled,
)
from fedcodec.shared.neural.period_choice import choose_period
from fedcodec.shared.neural.level_bounds import level_taus
from fedcodec.shared.neural.volume_context import reference_offsets
from fedcodec.shared.neural.model_registry import is_models_uri, resolve_weights
from fedcodec.shared.neural.weights import (
    DEFAULT_WEIGHTS,
    SHIPPED,
    NeuralWeights,
    shipped_path,
    shipped_with_id,
)

MAX_PIXELS = 1 << 28
PIXELS_PER_WORD = 1 << 18
"""No valid stream codes more pixels per 32-bit word (every table symbol costs > 2**-13 bit)."""


def _crc(image: np.ndarray) -> int:
    """CRC-32 of the pixels as little-endian bytes of their dtype."""
    return zlib.crc32(np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<")).tobytes())


@lru_cache(maxsize=4)
def load_weights(path: str) -> tuple[NeuralWeights, EntropyModels]:
    """Weights and their constriction models, loaded once per process."""
    weights = NeuralWeights.load(Path(path))
    return weights, EntropyModels(weights)


DEFAULT_MODEL_ENV = "FEDCODEC_NEURAL_WEIGHTS"
"""The model ``neural`` codes with when the spec names none (default: the newest shipped one).
A site that validated a model pins it here until it has validated the next; the experiments
whose figures were measured with ``neural_v1`` pin that. Decoding never depends on it: a stream
names its model."""


def _weights_path(weights: str | None) -> str:
    """``weights=``: a shipped model's name (``neural_v1``), a file, or a ``models:/`` URI."""
    from_env = not weights and bool(os.environ.get(DEFAULT_MODEL_ENV))
    weights = weights or os.environ.get(DEFAULT_MODEL_ENV, "")
    if not weights:
        return str(DEFAULT_WEIGHTS)
    shipped = shipped_path(str(weights))
    if shipped is not None:
        return str(shipped)
    if from_env and not Path(weights).is_file() and not is_models_uri(weights):
        raise FedcodecError(f"{DEFAULT_MODEL_ENV}={weights}: neither a shipped model "
                            f"({', '.join(SHIPPED)}) nor a weights file")
    return resolve_weights(str(weights))


@register_codec
class NeuralCodec(Codec):
    """Polyphase context model with integer inference and rANS coding (constriction)."""

    name = "neural"

    def __init__(self, mode: str = "", tau: int | None = None, period: int | None = None,
                 interslice: int = 1, weights: str | None = None, fallback: int = 1,
                 adapt: int = 1, centroid: int = 0, restart: int = 0, truncate: int = 1,
                 meanfit: int = 1, groupscale: int = 1, coarse: float = 1.0) -> None:
        if mode not in ("", "lossless", "near-lossless"):
            raise FedcodecError(f"neural codec: mode must be lossless or near-lossless, not {mode!r}")
        if tau is not None and (not isinstance(tau, int) or tau < 0):
            raise FedcodecError(f"neural codec: tau must be a non-negative integer, not {tau!r}")
        if mode == "near-lossless" and tau == 0:
            raise FedcodecError("neural codec: near-lossless needs tau >= 1 (tau=0 is lossless)")
        if mode == "lossless" and tau:
            raise FedcodecError("neural codec: mode=lossless does not take tau")
        self.tau = (1 if mode == "near-lossless" else 0) if tau is None else tau
        if period is not None and (not isinstance(period, int) or period < 0):
            raise FedcodecError(f"neural codec: period must be a non-negative integer, not {period!r}")
        if interslice not in (0, 1, 2):
            raise FedcodecError("neural codec: interslice must be 0, 1 or 2")
        if fallback not in (0, 1, 2):
            raise FedcodecError("neural codec: fallback must be 0, 1 or 2")
        self.period = period
        self.interslice = bool(interslice)
        self.interslice_mode = interslice
        self.check_references = interslice == 1
        """Code every slice that has references alone too, and keep the smaller stream."""
        self.fallback = fallback
        if adapt not in (0, 1):
            raise FedcodecError("neural codec: adapt must be 0 or 1")
        self.adapt = bool(adapt)
        """Choose a scale offset per slice (encode-time adaptation, 0xA4 streams)."""
        if truncate not in (0, 1) or meanfit not in (0, 1) or groupscale not in (0, 1):
            raise FedcodecError("neural codec: truncate, meanfit and groupscale must be 0 or 1")
        self.groupscale = bool(groupscale)
        """With ``adapt``: pyramid groups may move their scale bins further (0xA8)."""
        self.truncate = bool(truncate)
        """With ``adapt``: the slice's value range truncates the tables (0xA8)."""
        self.meanfit = bool(meanfit)
        """With ``adapt``: least-squares mean corrections of large groups (0xA8)."""
        self.weights_path = _weights_path(weights)
        if not isinstance(coarse, (int, float)) or not 0.0 < coarse <= 1.0:
            raise FedcodecError(f"neural codec: coarse must be in (0, 1], not {coarse!r}")
        self.coarse = float(coarse)
        """Level bounds (0xAA, :mod:`.level_bounds`): pyramid level l is coded within
        floor(tau * coarse**l); 1 = one bound everywhere."""
        if centroid not in (0, 1):
            raise FedcodecError("neural codec: centroid must be 0 or 1")
        self.centroid = bool(centroid)
        """Bounded error: reconstruct inside the bin (``bin_centroid``, stream magic 0xA6)."""
        if not isinstance(restart, int) or restart < 0:
            raise FedcodecError(f"neural codec: restart must be a non-negative integer, not "
                                f"{restart!r}")
        self.restart = restart
        """Code slice i alone when i % restart == 0: independent chains decode in parallel."""
        self.header_period: int | None = None
        """Slice positions per volume from the DICOM headers (:meth:`with_volume_layout`)."""
        self.mode = CodecMode.BOUNDED if self.tau else CodecMode.LOSSLESS
        self.max_error = self.tau

    def _weights(self) -> tuple[NeuralWeights, EntropyModels]:
        return load_weights(self.weights_path)

    def decodes_model(self, model_id_hex: str) -> bool:
        """True when streams naming this model id decode here (this codec's or a shipped one)."""
        try:
            model_id = bytes.fromhex(model_id_hex)
        except ValueError:
            return False
        own = self._weights()[0].model_id
        return bool(model_id) and (own[: len(model_id)] == model_id
                                   or shipped_with_id(model_id) is not None)

    def _weights_for(self, model_id: bytes) -> tuple[NeuralWeights, EntropyModels]:
        """The weights a stream names: this codec's, else the shipped model with that id (a
        stream written by an older default decodes with it), else a one-line error."""
        weights, models = self._weights()
        if weights.model_id[: len(model_id)] == model_id:
            return weights, models
        shipped = shipped_with_id(model_id)
        if shipped is None:
            raise CorruptDataError(
                f"neural stream was written with model {model_id.hex()}, which this build does "
                f"not have (it has {weights.model_id[: len(model_id)].hex()} and the shipped "
                f"{', '.join(SHIPPED)}): decode with neural:weights=<that model's file>")
        return load_weights(str(shipped))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(tau=self.tau, period=self.period, interslice=self.interslice_mode,
                   fallback=self.fallback, adapt=int(self.adapt))
        if not self.truncate:
            out["truncate"] = 0
        if not self.meanfit:
            out["meanfit"] = 0
        if not self.groupscale:
            out["groupscale"] = 0
        out["model_id"] = self._weights()[0].model_id.hex()
        if self.centroid:
            out["centroid"] = 1
        if self.restart:
            out["restart"] = self.restart
        if self.coarse != 1.0:
            out["coarse"] = self.coarse
        return out

    # -- single slices ---------------------------------------------------------------------

    @staticmethod
    def _check_image(image: np.ndarray, bits: int) -> None:
        if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
            raise FedcodecError(f"neural codec: need a 2-D uint8/uint16 image, got "
                                f"{image.ndim}-D {image.dtype}")
        if not 1 <= bits <= (8 if image.dtype == np.uint8 else 16):
            raise FedcodecError(f"neural codec: bit depth {bits} does not fit {image.dtype}")
        if image.size == 0 or image.size > MAX_PIXELS:
            raise FedcodecError(f"neural codec: cannot code a {image.shape} image")
        if int(image.max()) >> bits:
            raise FedcodecError(f"neural codec: values exceed {bits} bits")

    def _encode_one(self, image: np.ndarray, bits: int, refs: list[np.ndarray],
                    offsets: tuple[int, ...], tau: int | None = None,
                    window_bound: int = 0) -> tuple[bytes, np.ndarray]:
        """One slice stream and its reconstruction; ``tau`` overrides ``self.tau`` (rate
        control picks it per slice, :mod:`.bounded_lossy`). ``window_bound``: a progressive
        refinement of ``refs[0]``, the slice coded within that bound (0xA7 or 0xA9 stream)."""
        tau = self.tau if tau is None else tau
        if needs_tiles(image.shape):
            return self._encode_tiled(image, bits, refs, offsets, tau, window_bound)
        weights, models = self._weights()
        params = SliceParams(bits, tau, centroid=self.centroid and tau > 0 and not window_bound,
                             level_taus=() if window_bound else level_taus(tau, image.shape,
                                                                           self.coarse))
        if refs and np.abs(image.astype(np.int32) - refs[0]).max() <= tau:
            # a repeated slice (within tau) costs only its header, like a skipped video frame
            recon = refs[0]
            words = np.zeros(0, dtype=np.uint32)
            copy = True
            offset = 0
        elif window_bound and self.adapt:
            words, recon, params = encode_refinement_adaptive(image, params, refs, weights,
                                                              models, window_bound,
                                                              models.for_bound(tau),
                                                              self.meanfit, self.groupscale)
            copy, offset = False, params.scale_offset
        elif window_bound:
            words, recon = encode_slice(image, params, refs, weights, models,
                                        window_bound=window_bound)
            copy, offset = False, 0
        elif self.adapt:
            words, recon, params = encode_slice_adaptive(image, params, refs, weights, models,
                                                         self.truncate, self.meanfit,
                                                         self.groupscale,
                                                         models.for_bound(tau))
            copy, offset = False, params.scale_offset
        else:
            words, recon = encode_slice(image, params, refs, weights, models)
            copy, offset = False, 0
        header = StreamHeader(image.shape[0], image.shape[1], bits, tau,
                              image.dtype == np.uint16, offsets, weights.model_id,
                              _crc(recon.astype(image.dtype)), copy, offset,
                              params.centroid and not copy, 0 if copy else window_bound,
                              params.centred_cells and not copy,
                              None if copy else params.bounds,
                              () if copy else params.corrections,
                              () if copy else params.group_offsets,
                              params.cell_tables and not copy,
                              () if copy else params.level_taus)
        return pack(header, words), recon

    def _encode_tiled(self, image: np.ndarray, bits: int, refs: list[np.ndarray],
                      offsets: tuple[int, ...], tau: int, window_bound: int = 0
                      ) -> tuple[bytes, np.ndarray]:
        """A large slice as tiles (see :mod:`.tiles`), each conditioned on the same tile of refs."""
        from fedcodec.shared.neural import tiles

        grid = TileGrid(image.shape[0], image.shape[1], tiles.TILE_SIDE)
        recon = np.empty(image.shape, dtype=np.int32)
        streams = []
        for rows, cols in grid:
            data, part = self._encode_one(np.ascontiguousarray(image[rows, cols]), bits,
                                          [ref[rows, cols] for ref in refs], offsets, tau,
                                          window_bound)
            streams.append(data)
            recon[rows, cols] = part
        return pack_tiled(grid, streams), recon

    def _decode_tiled(self, data: bytes, decoded: Sequence[np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray]:
        grid, streams = unpack_tiled(data)
        recon = np.empty((grid.rows, grid.cols), dtype=np.int32)
        out = None
        for (rows, cols), stream in zip(grid, streams, strict=True):
            part_out, part = self._decode_one(stream, CroppedReferences(decoded, rows, cols))
            expected = (rows.stop - rows.start, cols.stop - cols.start)
            if part_out.shape != expected or (out is not None and part_out.dtype != out.dtype):
                raise CorruptDataError("neural stream: a tile does not fit its place")
            if out is None:
                out = np.empty((grid.rows, grid.cols), dtype=part_out.dtype)
            out[rows, cols] = part_out
            recon[rows, cols] = part
        return out, recon

    def _decode_one(self, data: bytes, decoded: Sequence[np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray]:
        if is_classical(data):
            out = decode_classical(data)
            return out, out.astype(np.int32)
        if is_tiled(data):
            return self._decode_tiled(data, decoded)
        header, words = unpack(data)
        weights, models = self._weights_for(header.model_id)
        if header.cell_tables:
            near = models.for_bound(header.tau)
            if near is models:
                raise CorruptDataError(f"neural stream: tau {header.tau} asks for near-lossless "
                                       f"tables model {header.model_id.hex()} does not have")
            models = near
        pixels = header.rows * header.cols
        if pixels > MAX_PIXELS or (not header.copy and pixels > PIXELS_PER_WORD * (words.size + 2)):
            raise CorruptDataError(f"neural stream: {header.rows}x{header.cols} does not fit "
                                   f"its {words.size * 4}-byte payload")
        refs = []
        for off in header.ref_offsets:
            if off > len(decoded):
                raise CorruptDataError(
                    f"neural stream needs the slice {off} back, which is not there "
                    "(decode the whole volume with decode_volume, in order)"
                )
            ref = decoded[-off]
            if ref.shape != (header.rows, header.cols):
                raise CorruptDataError("neural stream: reference slice has another shape")
            refs.append(ref)
        if header.copy:
            recon = refs[0]
            if int(recon.max()) >> header.bits:
                raise CorruptDataError("neural stream: copied reference exceeds the bit depth")
        else:
            recon = decode_slice(words, (header.rows, header.cols),
                                 SliceParams(header.bits, header.tau,
                                             scale_offset=header.scale_offset,
                                             centroid=header.centroid,
                                             centred_cells=header.centred_cells,
                                             bounds=header.bounds,
                                             corrections=header.corrections,
                                             group_offsets=header.group_offsets,
                                             cell_tables=header.cell_tables,
                                             level_taus=header.level_taus), refs,
                                 weights, models, window_bound=header.window_bound)
        out = recon.astype(np.uint16 if header.uint16 else np.uint8)
        if _crc(out) != header.crc32:
            raise CorruptDataError("neural stream is corrupt (pixel checksum mismatch)")
        return out, recon

    def _encode_best(self, image: np.ndarray, bits: int, refs: list[np.ndarray],
                     offsets: tuple[int, ...]) -> tuple[bytes, np.ndarray]:
        """The smallest stream this codec's options allow for one slice (see the module doc)."""
        data, recon = self._encode_one(image, bits, refs, offsets)
        if refs and self.check_references and data[0] != COPY_MAGIC:
            alone, alone_recon = self._encode_one(image, bits, [], ())
            if len(alone) < len(data):
                data, recon = alone, alone_recon
        if self.fallback:
            classical = smaller_classical(image, bits, self.tau, self.fallback, len(data))
            if classical is not None:
                data, recon = classical
        return data, recon

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        image = np.asarray(image)
        self._check_image(image, bits)
        return self._encode_best(image, bits, [], ())[0]

    def decode(self, data: bytes) -> np.ndarray:
        return self._decode_one(data, [])[0]

    # -- volumes ---------------------------------------------------------------------------

    def with_volume_layout(self, positions_per_volume: int | None) -> NeuralCodec:
        """This codec for one series whose headers give its slice positions per volume: a
        candidate period beside the one detected from the pixels (:mod:`.period_choice`).
        An explicit ``period=`` wins; the codec itself is left as it was (coders are shared)."""
        if positions_per_volume is None or self.period is not None:
            return self
        bound = copy.copy(self)
        bound.header_period = positions_per_volume
        return bound

    def volume_period(self, volume: np.ndarray, bits: int) -> int:
        """The period used for ``volume``: the ``period`` parameter, else the cheapest of the
        detected one, the headers' one and the previous slice alone, tried on sample slices."""
        if self.period is not None:
            return max(1, self.period)

        def coded_bytes(image: np.ndarray, refs: list[np.ndarray], offsets: tuple[int, ...]
                        ) -> int:
            return len(self._encode_one(np.ascontiguousarray(image), bits, refs, offsets)[0])

        self._weights()
        return choose_period(volume, self.header_period, coded_bytes)[0]

    def encode_volume(self, volume: np.ndarray, bits: int) -> list[bytes]:
        volume = np.asarray(volume)
        if volume.ndim != 3:
            raise FedcodecError(f"neural codec: need a (slices, rows, cols) volume, got {volume.shape}")
        if volume.shape[0] == 0:
            return []
        self._check_image(volume[0], bits)
        if int(volume.max()) >> bits:
            raise FedcodecError(f"neural codec: values exceed {bits} bits")
        period = self.volume_period(volume, bits) if self.interslice else 1
        self._weights()  # loaded once here, inherited by forked workers
        slices = volume.shape[0]
        if self.tau == 0:
            # lossless: every slice's reconstruction is the slice itself, so any span of the
            # volume encodes on its own given the originals just before it (its references)
            parts = worker_count(slices)
            bounds = [slices * k // parts for k in range(parts + 1)]
            starts = [(max(0, a - period), a, b) for a, b in itertools.pairwise(bounds)]
            jobs = [(volume[c:b], bits, period, c, a - c) for c, a, b in starts]
        else:  # the reconstruction is only known by coding in order: one job per chain
            step = self.restart or slices
            jobs = [(volume[a : a + step], bits, period, a, 0) for a in range(0, slices, step)]
        pixels = volume[0].size
        parts_out = run_jobs(self._encode_span, jobs,
                             [(len(job[0]) - job[4]) * pixels for job in jobs])
        return [data for part in parts_out for data in part]

    def _encode_span(self, volume: np.ndarray, bits: int, period: int, base: int,
                     start: int) -> list[bytes]:
        """Streams of slices ``start..`` of ``volume``, whose slice 0 is slice ``base`` of the
        series; slices before ``start`` are known reconstructions (lossless: the originals).
        References never cross a ``restart`` boundary."""
        streams = []
        recons = [np.asarray(image, dtype=np.int32) for image in volume[:start]]
        for j in range(start, volume.shape[0]):
            index = base + j
            offsets = reference_offsets(index % self.restart if self.restart else index, period,
                                        self.interslice)
            refs = [recons[j - off] for off in offsets]
            data, recon = self._encode_best(np.ascontiguousarray(volume[j]), bits, refs, offsets)
            streams.append(data)
            recons.append(recon)
        return streams

    def _decode_chain(self, streams: Sequence[bytes]) -> list[np.ndarray]:
        """Decode consecutive streams whose references stay inside ``streams``, in order."""
        outputs, recons = [], []
        for data in streams:
            out, recon = self._decode_one(data, recons)
            outputs.append(out)
            recons.append(recon)
        return outputs

    def decode_volume(self, streams: Sequence[bytes]) -> np.ndarray:
        return self._decode_volumes([streams])[0]

    def decode_volumes(self, volumes: Sequence[Sequence[bytes]]) -> list[np.ndarray]:
        """``[decode_volume(v) for v in volumes]`` (e.g. the series of a study), with every
        independent chain of every volume a job for the worker processes (:mod:`.chains`)."""
        if type(self).decode_volume is not NeuralCodec.decode_volume:
            return [self.decode_volume(v) for v in volumes]  # a subclass's own volume layout
        return self._decode_volumes(volumes)

    def _decode_volumes(self, volumes: Sequence[Sequence[bytes]]) -> list[np.ndarray]:
        """Decode volumes of plain slice streams; exactly what decoding each in order gives."""
        self._weights()  # loaded once here, inherited by forked workers
        jobs, owners, work = [], [], []
        for v, streams in enumerate(volumes):
            streams = list(streams)
            if not streams:
                raise CorruptDataError("neural codec: no streams to decode")
            layout = [_stream_layout(data) for data in streams]
            for span in chains([i - reach for i, (reach, _) in enumerate(layout)]):
                jobs.append((streams[span.start : span.stop],))
                work.append(sum(pixels for _, pixels in layout[span.start : span.stop]))
                owners.append(v)
        parts = run_jobs(self._decode_chain, jobs, work)
        out: list[list[np.ndarray]] = [[] for _ in volumes]
        for v, part in zip(owners, parts, strict=True):
            out[v].extend(part)
        for outputs in out:
            if len({o.shape for o in outputs}) != 1 or len({o.dtype for o in outputs}) != 1:
                raise CorruptDataError(
                    "neural codec: slices of one volume differ in shape or dtype")
        return [np.stack(outputs) for outputs in out]


def stream_reach(data: bytes) -> int:
    """How many slices back a stream reaches (its largest reference offset; 0 = decodes alone).

    Reads headers only (a tiled slice: every tile's); a stream that does not parse raises the
    same CorruptDataError its decoding would."""
    return _stream_layout(data)[0]


def _stream_layout(data: bytes) -> tuple[int, int]:
    """(reach, pixels the neural coder decodes) from the headers; classical streams: (0, 0)."""
    if is_classical(data):
        return 0, 0
    if is_tiled(data):
        tiles = [_stream_layout(tile) for tile in unpack_tiled(data)[1]]
        return max((r for r, _ in tiles), default=0), sum(p for _, p in tiles)
    header = unpack(data)[0]
    return max(header.ref_offsets, default=0), 0 if header.copy else header.rows * header.cols
