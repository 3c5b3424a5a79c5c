"""Hybrid mode: stream size per base-layer choice, vs JPEG-LS tau=2, on held-out slices.

    cd experiments && nice -n 10 ../.venv/bin/python learned_lossy_hybrid_bases.py

Middle slice of every 4th fold-1 series (split by series). For each base choice (none, or a PSNR
target in dB over the slice's range) prints base bpp and total bpp of the hybrid stream's
sections (the 33-byte header + CRC not included).
"""

from __future__ import annotations

from fedcodec.shared.codecs.base import get_codec
from fedcodec.shared.learned_lossy import hybrid
from fedcodec.shared.learned_lossy.weights import HYBRID_WEIGHTS
from neural_dataset import load_items

BASES = (None, 16.0, 22.0, 28.0, 34.0)


def main() -> None:
    items = [i for i in load_items() if i.fold == 1]
    jls = get_codec("jpegls:tau=2")
    weights, models = hybrid.load_residual_weights(str(HYBRID_WEIGHTS))
    print("| slice | size | JPEG-LS | " + " | ".join(f"base {b} (base / total)" for b in BASES) + " |")
    for item in items[::4]:
        image = item.volume[item.volume.shape[0] // 2]
        bits = item.bits
        cells = [f"{8 * len(jls.encode(image, bits)) / image.size:.3f}"]
        for db in BASES:
            base, _, refinement = hybrid.encode_with_base(image, bits, 2, db, weights, models)
            cells.append(f"{8 * len(base) / image.size:.3f} / "
                         f"{8 * (len(base) + len(refinement)) / image.size:.3f}")
        print(f"| {item.name[:44]} | {image.shape[0]}x{image.shape[1]} | " + " | ".join(cells) + " |",
              flush=True)


if __name__ == "__main__":
    main()
