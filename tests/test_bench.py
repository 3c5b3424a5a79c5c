"""The benchmark harness: guarantees enforced on every pixel, the results files, timing rules."""

from __future__ import annotations

import csv
import json
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from fedcodec.shared.benchmark import (
    GuaranteeViolation,
    results_document,
    run_benchmark,
    write_report,
)
from fedcodec.shared.codecs.base import Codec, CodecMode
from fedcodec.shared.errors import CorruptDataError, FedcodecError, UnknownNameError
from fedcodec.shared.sources import SliceStack

CONTRACT = ("codec", "lossless", "max_error_bound", "bpp", "psnr", "ssim", "max_abs_error",
            "encode_ms", "decode_ms")


# Codecs written for these tests: small, exact, and each with a known behaviour.


def _pack(image: np.ndarray) -> bytes:
    head = struct.pack("<HHB", *image.shape, 1 if image.dtype == np.uint8 else 2)
    return head + zlib.compress(np.ascontiguousarray(image).tobytes(), 6)


def _unpack(data: bytes) -> np.ndarray:
    try:
        rows, cols, width = struct.unpack("<HHB", data[:5])
        raw = zlib.decompress(data[5:])
    except (struct.error, zlib.error) as exc:
        raise CorruptDataError(f"bad test stream: {exc}") from None
    return np.frombuffer(raw, dtype=np.uint8 if width == 1 else np.uint16).reshape(rows, cols)


class DeflateCodec(Codec):
    """Lossless: zlib over the raw samples."""

    name = "test-deflate"

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        return _pack(image)

    def decode(self, data: bytes) -> np.ndarray:
        return _unpack(data)


class QuantisingCodec(Codec):
    """Near-lossless with bound ``tau``: uniform quantiser of step 2*tau+1 (error <= tau).

    ``claimed`` lets a test declare a tighter bound than the quantiser keeps.
    """

    name = "test-quant"
    mode = CodecMode.BOUNDED

    def __init__(self, tau: int, claimed: int | None = None) -> None:
        self.tau, self.max_error = tau, tau if claimed is None else claimed

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        step = 2 * self.tau + 1
        quantised = (image.astype(np.int32) + self.tau) // step
        return struct.pack("<HB", step, bits) + _pack(quantised.astype(image.dtype))

    def decode(self, data: bytes) -> np.ndarray:
        step, bits = struct.unpack("<HB", data[:3])
        q = _unpack(data[3:])
        return np.minimum(q.astype(np.int32) * step, (1 << bits) - 1).astype(q.dtype)


class LsbDroppingCodec(DeflateCodec):
    """Declared lossless, but clears the lowest bit: the benchmark must refuse it."""

    name = "test-liar"

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        return _pack(image & ~np.array(1, dtype=image.dtype))


class CoarseCodec(DeflateCodec):
    """Honestly lossy: keeps the top ``bits - 4`` bits."""

    name = "test-coarse"
    mode = CodecMode.LOSSY
    max_error = None

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        return _pack((image >> 4) << 4)


class InterSliceCodec(DeflateCodec):
    """Codes each slice as the difference to the previous one (overrides the volume calls)."""

    name = "test-interslice"

    def encode_volume(self, volume: np.ndarray, bits: int) -> list[bytes]:
        previous = np.zeros_like(volume[0])
        streams = []
        for image in volume:
            streams.append(_pack((image.astype(np.int32) - previous).astype(np.uint16)))
            previous = image
        return streams

    def decode_volume(self, streams: Sequence[bytes]) -> np.ndarray:
        out, previous = [], None
        for stream in streams:
            delta = _unpack(stream)
            if previous is not None:
                delta = (previous.astype(np.int32) + delta.astype(np.int16)).astype(delta.dtype)
            image = delta
            out.append(image)
            previous = image
        return np.stack(out)


class BrokenDecoderCodec(DeflateCodec):
    name = "test-broken"

    def decode(self, data: bytes) -> np.ndarray:
        raise RuntimeError("decoder exploded\nwith a second line")


def _stack(name: str, volume: np.ndarray, bits: int, signed: bool = False) -> SliceStack:
    return SliceStack(name, volume, bits, signed, Path(name))


@pytest.fixture()
def stacks() -> list[SliceStack]:
    """Two stacks of different sizes, one signed, with smooth structure and noise."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:48, 0:40]
    base = (1500 + 1200 * np.sin(x / 7.0) * np.cos(y / 9.0)).astype(np.int32)
    unsigned = np.stack([base + rng.integers(0, 60, base.shape) + 40 * i for i in range(3)])
    signed = rng.integers(-800, 800, size=(2, 32, 36)).astype(np.int16)
    return [
        _stack("mr-a", unsigned.astype(np.uint16), 12),
        _stack("signed-b", signed, 11, signed=True),
    ]


def test_results_json_contract(stacks: list[SliceStack], tmp_path: Path) -> None:
    codecs = [DeflateCodec(), QuantisingCodec(2), CoarseCodec()]
    result = run_benchmark(stacks, codecs, progress=False)
    written = write_report(result, tmp_path)
    names = {"results.json", "results.csv", "rd_psnr.png", "rd_ssim.png"}
    assert {p.name for p in written} == names
    doc = json.loads((tmp_path / "results.json").read_text(), parse_constant=pytest.fail)
    assert list(doc) == ["slices", "pixels", "summary", "records"]
    assert doc["slices"] == 5 and doc["pixels"] == 3 * 48 * 40 + 2 * 32 * 36
    assert [s["codec"] for s in doc["summary"]] == ["test-deflate", "test-quant", "test-coarse"]
    slice_ids = ["mr-a/0", "mr-a/1", "mr-a/2", "signed-b/0", "signed-b/1"]
    for summary in doc["summary"]:
        assert list(summary)[: len(CONTRACT)] == list(CONTRACT)
        assert isinstance(summary["lossless"], bool)
        assert summary["max_error_bound"] is None or isinstance(summary["max_error_bound"], int)
        for key in ("bpp", "ssim", "encode_ms", "decode_ms", "bpp_total", "ratio"):
            assert isinstance(summary[key], float) and summary[key] >= 0, key
        assert isinstance(summary["max_abs_error"], int)
        mine = [r for r in doc["records"] if r["codec"] == summary["codec"]]
        assert [r["slice_id"] for r in mine] == slice_ids  # one record per slice, in order
        assert summary["slices"] == len(mine)
        assert summary["bpp"] == pytest.approx(sum(r["bpp"] for r in mine) / len(mine))
        bits = sum(8 * r["bytes"] for r in mine)
        assert summary["bpp_total"] == pytest.approx(bits / doc["pixels"])
        assert summary["ssim"] == pytest.approx(sum(r["ssim"] for r in mine) / len(mine))
        assert summary["max_abs_error"] == max(r["max_abs_error"] for r in mine)
        assert summary["encode_ms"] == pytest.approx(sum(r["encode_ms"] for r in mine) / len(mine))
        for record in mine:
            assert list(record)[: len(CONTRACT) + 1] == ["slice_id", *CONTRACT]
            assert record["bpp"] == pytest.approx(8 * record["bytes"] / record["pixels"])
    lossless, bounded, lossy = doc["summary"]
    assert (lossless["lossless"], lossless["max_error_bound"], lossless["psnr"]) == (True, 0, None)
    assert lossless["max_abs_error"] == 0 and lossless["ssim"] == 1.0
    assert all(r["psnr"] is None for r in doc["records"] if r["codec"] == "test-deflate")
    assert not bounded["lossless"]
    assert (bounded["max_error_bound"], bounded["max_abs_error"]) == (2, 2)
    assert (lossy["max_error_bound"], lossy["max_abs_error"]) == (None, 15)
    assert 20 < lossy["psnr"] < bounded["psnr"] < 100
    assert lossy["bpp"] < bounded["bpp"] < lossless["bpp"]


def test_psnr_uses_the_real_bit_depth(stacks: list[SliceStack]) -> None:
    result = run_benchmark(stacks[:1], [CoarseCodec()], progress=False)
    image = stacks[0].volume[0].astype(np.float64)
    mse = np.mean((image - ((stacks[0].volume[0] >> 4) << 4)) ** 2)
    assert result.records[0].psnr == pytest.approx(10 * math.log10(4095**2 / mse), abs=1e-6)
    assert result.records[0].ratio == pytest.approx(12 * image.size / (8 * result.records[0].bytes))


def test_csv_has_one_row_per_record(stacks: list[SliceStack], tmp_path: Path) -> None:
    result = run_benchmark(stacks, [DeflateCodec(), CoarseCodec()], progress=False)
    write_report(result, tmp_path, plots=False)
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == 10
    assert rows[0]["slice_id"] == "mr-a/0" and rows[0]["psnr"] == "inf"
    assert float(rows[5]["psnr"]) == pytest.approx(result.records[5].psnr)
    assert not (tmp_path / "rd_psnr.png").exists()


def test_plots_are_png(stacks: list[SliceStack], tmp_path: Path) -> None:
    # Two configurations of one family must get distinct labels to share a curve.
    q1, q4 = QuantisingCodec(1), QuantisingCodec(4)
    q1.name, q4.name = "test-quant:tau=1", "test-quant:tau=4"
    result = run_benchmark(stacks, [DeflateCodec(), q1, q4, CoarseCodec()], progress=False)
    for path in write_report(result, tmp_path)[2:]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_lossy_codec_declared_lossless_fails_the_run(stacks: list[SliceStack]) -> None:
    message = r"'test-liar' is declared lossless but changed mr-a/0 \(max abs error 1\)"
    with pytest.raises(GuaranteeViolation, match=message):
        run_benchmark(stacks, [DeflateCodec(), LsbDroppingCodec()], progress=False)


def test_bound_is_checked_on_every_pixel(stacks: list[SliceStack]) -> None:
    result = run_benchmark(stacks, [QuantisingCodec(3)], progress=False)
    assert max(r.max_abs_error for r in result.records) == 3
    message = r"'test-quant' broke its bound on mr-a/0: max abs error 3 > 2"
    with pytest.raises(GuaranteeViolation, match=message):
        run_benchmark(stacks, [QuantisingCodec(3, claimed=2)], progress=False)


def test_single_pixel_violation_is_caught(stacks: list[SliceStack]) -> None:
    class OnePixelOff(DeflateCodec):
        name = "test-one-pixel"

        def decode(self, data: bytes) -> np.ndarray:
            image = super().decode(data).copy()
            if image.shape == (32, 36):
                image[31, 35] ^= 1
            return image

    with pytest.raises(GuaranteeViolation, match="changed signed-b/0"):
        run_benchmark(stacks, [OnePixelOff()], progress=False)


def test_signed_stack_is_coded_shifted_and_exact(stacks: list[SliceStack]) -> None:
    result = run_benchmark(stacks[1:], [InterSliceCodec(), DeflateCodec()], progress=False)
    assert [r.max_abs_error for r in result.records] == [0, 0, 0, 0]
    inter = [r for r in result.records if r.codec == "test-interslice"]
    # Inter-slice codecs are timed per stack: every slice gets the stack time / slices.
    assert inter[0].encode_ms == inter[1].encode_ms and inter[0].decode_ms == inter[1].decode_ms
    independent = [r for r in result.records if r.codec == "test-deflate"]
    assert all(r.encode_ms > 0 and r.decode_ms > 0 for r in independent)


def test_codec_failure_names_codec_and_slice(stacks: list[SliceStack]) -> None:
    message = (r"^codec 'test-broken' failed to decode mr-a/0: "
               r"RuntimeError: decoder exploded with a second line$")
    with pytest.raises(FedcodecError, match=message):
        run_benchmark(stacks, [BrokenDecoderCodec()], progress=False)


def test_bad_inputs_fail_before_any_work(stacks: list[SliceStack]) -> None:
    with pytest.raises(UnknownNameError, match="unknown codec 'nope'"):
        run_benchmark(stacks, [DeflateCodec(), "nope"], progress=False)
    with pytest.raises(FedcodecError, match="codec listed twice: test-deflate"):
        run_benchmark(stacks, [DeflateCodec(), DeflateCodec()], progress=False)
    with pytest.raises(FedcodecError, match="no slices"):
        run_benchmark([], [DeflateCodec()], progress=False)


def test_results_document_is_strict_json(stacks: list[SliceStack]) -> None:
    result = run_benchmark(stacks[:1], [DeflateCodec()], progress=False)
    text = json.dumps(results_document(result), allow_nan=False)  # raises on inf/nan
    assert '"psnr": null' in text


def test_demo_benchmark_step_on_the_embedded_mri(tmp_path: Path) -> None:
    """``fedcodec demo --steps benchmark`` on the MRI shipped by its dependencies."""
    from fedcodec.client.cli import main

    assert main(["demo", "--quick", "--steps", "benchmark", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    doc = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert doc["slices"] > 0
    codecs = [s["codec"] for s in doc["summary"]]
    assert {"jxl", "jpegls"} <= set(codecs)
    assert len(doc["records"]) == doc["slices"] * len(codecs)
    for summary in doc["summary"]:
        if summary["lossless"]:
            assert summary["max_abs_error"] == 0 and summary["exact_slices"] == doc["slices"]
        elif summary["max_error_bound"] is not None:
            assert summary["max_abs_error"] <= summary["max_error_bound"]


def test_series_split_keeps_one_side_and_every_part(stacks: list[SliceStack], tmp_path: Path) -> None:
    from fedcodec.client.commands.bench import stacks_in_split

    parted = _stack("1.2.3#1", stacks[0].volume, 12)
    named = [_stack("1.2.3", stacks[0].volume, 12), parted, _stack("9.9", stacks[1].volume, 11)]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [{"series_uid": "9.9"}],
                                 "heldout": [{"series_uid": "1.2.3"}]}))
    assert [s.name for s in stacks_in_split(named, split, "heldout")] == ["1.2.3", "1.2.3#1"]
    assert [s.name for s in stacks_in_split(named, split, "train")] == ["9.9"]
    split.write_text(json.dumps({"train": [], "heldout": [{"series_uid": "4.5"}]}))
    with pytest.raises(FedcodecError, match="no series of this folder is on the heldout side"):
        stacks_in_split(named, split, "heldout")
    split.write_text("[1, 2")
    with pytest.raises(FedcodecError, match="is not a split.json from `fedcodec train`"):
        stacks_in_split(named, split, "heldout")
    with pytest.raises(FedcodecError, match="no such split file"):
        stacks_in_split(named, tmp_path / "nope.json", "heldout")


def test_bench_records_provenance(tmp_path: Path) -> None:
    """results.json says what it measured: input, fedcodec version, codec models, machine, date."""
    from fedcodec import __version__
    from fedcodec.client.cli import main

    volume = (np.arange(2 * 32 * 32) % 4096).reshape(2, 32, 32).astype(np.uint16)
    np.save(tmp_path / "stack.npy", volume)
    assert main(["bench", str(tmp_path / "stack.npy"), "--codecs", "jpegls", "zstd",
                 "--out", str(tmp_path / "out"), "--quiet", "--no-plots"]) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    provenance = doc["provenance"]
    assert provenance["input"] == str((tmp_path / "stack.npy").resolve())
    assert provenance["fedcodec_version"] == __version__
    assert provenance["codec_models"] == {"jpegls": None, "zstd": None}
    assert provenance["machine"]["cpus_usable"] >= 1 and provenance["machine"]["python"]
    assert provenance["date_utc"].endswith("Z")
