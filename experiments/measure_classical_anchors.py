"""Measure the classical lossless / near-lossless anchors on ../shared/data/dicom.

Issue 2 quotes one run over 1807 slices (bits per pixel, lower is better): JPEG XL e7 3.87,
J2K 4.36, JPEG-LS 4.54, HTJ2K 4.62, JPEG-LS tau=2 2.71, zstd-19 5.50. This script re-measures
them through the codec registry on every 2-D frame of every DICOM file under the folder and
reports bpp two ways, because "mean bpp" is ambiguous:

* per-slice mean: the average over frames of 8 * bytes / pixels (every slice weighs the same,
  so the many small 64x64 fMRI/DTI frames dominate);
* pooled: 8 * total bytes / total pixels (every pixel weighs the same, so the 256x256+
  anatomical slices and mosaics dominate).

``--variants`` also encodes with imagecodecs' defaults (container bit depth, library COM
segments, SPIFF header), to show how much of any gap to the anchors those choices explain.

Pixels are read with pydicom directly (masking unused high bits and sign-extending, as pydicom
3 does) and shifted to unsigned with ``to_unsigned``; every lossless stream is decoded and
compared, and the near-lossless one is checked against its bound.

Run: ``nice -n 10 .venv/bin/python experiments/measure_classical_anchors.py [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from tqdm import tqdm

from fedcodec.shared.codecs.base import get_codec
from fedcodec.shared.pixels import to_unsigned

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "dicom"

ANCHORS = {
    "jxl": 3.87,
    "j2k": 4.36,
    "jpegls": 4.54,
    "htj2k": 4.62,
    "jpegls:tau=2": 2.71,
    "zstd": 5.50,
}
ANCHOR_SLICES = 1807


@dataclass(frozen=True)
class Frame:
    """One 2-D frame of stored values, unsigned, with its real bit depth."""

    source: str
    index: int
    vendor: str
    image: np.ndarray
    bits: int


@dataclass
class Tally:
    """Sizes of one codec's streams over the frames, and how long encoding took."""

    bpp_per_frame: list[float] = field(default_factory=list)
    total_bytes: int = 0
    total_pixels: int = 0
    encode_seconds: float = 0.0
    by_vendor: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def add(self, nbytes: int, frame: Frame, seconds: float) -> None:
        pixels = frame.image.size
        self.bpp_per_frame.append(8.0 * nbytes / pixels)
        self.total_bytes += nbytes
        self.total_pixels += pixels
        self.encode_seconds += seconds
        self.by_vendor[frame.vendor][0] += nbytes
        self.by_vendor[frame.vendor][1] += pixels

    def summary(self) -> dict[str, object]:
        return {
            "frames": len(self.bpp_per_frame),
            "per_slice_mean_bpp": float(np.mean(self.bpp_per_frame)),
            "pooled_bpp": 8.0 * self.total_bytes / self.total_pixels,
            "encode_seconds": self.encode_seconds,
            "pooled_bpp_by_vendor": {
                vendor: 8.0 * nbytes / pixels
                for vendor, (nbytes, pixels) in sorted(self.by_vendor.items())
            },
        }


def iter_frames(root: Path, skipped: list[str]) -> Iterator[Frame]:
    """Every 2-D greyscale frame under ``root``; files without DICOM pixels go to ``skipped``."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        try:
            dataset = pydicom.dcmread(path)
        except (InvalidDicomError, OSError) as exc:
            skipped.append(f"{relative}: not DICOM ({type(exc).__name__})")
            continue
        if "PixelData" not in dataset:
            skipped.append(f"{relative}: no pixel data")
            continue
        if int(dataset.get("SamplesPerPixel", 1)) != 1:
            skipped.append(f"{relative}: not greyscale")
            continue
        bits = int(dataset.BitsStored)
        values = dataset.pixel_array
        frames = values if values.ndim == 3 else values[np.newaxis]
        signed = int(dataset.PixelRepresentation) == 1
        for index, frame in enumerate(frames):
            image, _ = to_unsigned(frame, bits, signed)
            yield Frame(str(relative), index, relative.parts[0], np.ascontiguousarray(image), bits)


def imagecodecs_default_variants() -> dict[str, Callable[[np.ndarray, int], bytes]]:
    """imagecodecs with its defaults: what a quick script (and, it turns out, the anchors) does."""
    ic = imagecodecs
    return {
        "variant:jpegls imagecodecs default (P=container bits, SPIFF)": (
            lambda a, b: ic.jpegls_encode(a)
        ),
        "variant:jpegls:tau=2 imagecodecs default (P=container bits, SPIFF)": (
            lambda a, b: ic.jpegls_encode(a, level=2)
        ),
        "variant:j2k imagecodecs default (JP2 boxes, container precision, COM)": (
            lambda a, b: ic.jpeg2k_encode(a, numthreads=1)
        ),
        "variant:j2k imagecodecs J2K, container precision, with COM": (
            lambda a, b: ic.jpeg2k_encode(a, codecformat="J2K", numthreads=1)
        ),
        "variant:j2k imagecodecs J2K, bitspersample=bits, with COM": (
            lambda a, b: ic.jpeg2k_encode(a, codecformat="J2K", bitspersample=b, numthreads=1)
        ),
        "variant:htj2k imagecodecs default (with COM)": lambda a, b: ic.htj2k_encode(a),
        "variant:jxl imagecodecs effort 7, container bits": (
            lambda a, b: ic.jpegxl_encode(a, lossless=True, effort=7, numthreads=1)
        ),
        "variant:zstd-19 raw samples, no header": (
            lambda a, b: ic.zstd_encode(a.tobytes(), level=19)
        ),
    }


def measure(specs: list[str], frames: list[Frame], variants: bool) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    for spec in specs:
        codec = get_codec(spec)
        tally = tallies[spec] = Tally()
        for frame in tqdm(frames, desc=spec, unit="slice", file=sys.stderr, leave=False):
            start = time.perf_counter()
            stream = codec.encode(frame.image, frame.bits)
            tally.add(len(stream), frame, time.perf_counter() - start)
            decoded = codec.decode(stream)
            error = int(np.max(np.abs(decoded.astype(np.int64) - frame.image.astype(np.int64))))
            if error > codec.max_error:
                where = f"{frame.source}[{frame.index}]"
                raise AssertionError(f"{spec} broke its bound on {where}: error {error}")
    if variants:
        for name, encode in imagecodecs_default_variants().items():
            tally = tallies[name] = Tally()
            for frame in tqdm(frames, desc=name[:40], unit="slice", file=sys.stderr, leave=False):
                start = time.perf_counter()
                stream = encode(frame.image, frame.bits)
                tally.add(len(stream), frame, time.perf_counter() - start)
    return tallies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--specs", nargs="*", default=list(ANCHORS))
    parser.add_argument(
        "--variants", action="store_true", help="also encode with imagecodecs' defaults"
    )
    parser.add_argument("--json", type=Path, help="write the numbers here as JSON")
    args = parser.parse_args(argv)

    skipped: list[str] = []
    frames = list(iter_frames(args.root, skipped))
    shapes: dict[str, int] = defaultdict(int)
    for frame in frames:
        shapes[f"{frame.image.shape[0]}x{frame.image.shape[1]}@{frame.bits}b"] += 1
    print(f"{len(frames)} frames from {len({f.source for f in frames})} files under {args.root}")
    print(f"skipped {len(skipped)} files: " + "; ".join(skipped))
    by_count = sorted(shapes.items(), key=lambda item: -item[1])
    print("frame shapes: " + ", ".join(f"{shape} x{count}" for shape, count in by_count))

    tallies = measure(args.specs, frames, args.variants)
    print(f"\n{'codec':<72} {'slice-mean':>10} {'pooled':>8} {'anchor':>7} {'enc s':>7}")
    results = {}
    for name, tally in tallies.items():
        summary = tally.summary()
        anchor = ANCHORS.get(name)
        results[name] = {**summary, "anchor_bpp": anchor}
        print(
            f"{name:<72} {summary['per_slice_mean_bpp']:>10.3f} {summary['pooled_bpp']:>8.3f}"
            f" {anchor if anchor is not None else '':>7} {summary['encode_seconds']:>7.1f}"
        )
    print("\npooled bpp by vendor:")
    for name, tally in tallies.items():
        by_vendor = tally.summary()["pooled_bpp_by_vendor"]
        print(f"  {name:<70} " + "  ".join(f"{v}={bpp:.2f}" for v, bpp in by_vendor.items()))
    if args.json:
        payload = {"frames": len(frames), "anchor_slices": ANCHOR_SLICES, "skipped": skipped,
                   "frame_shapes": shapes, "results": results}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
