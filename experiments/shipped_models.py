"""The shipped ``neural`` models side by side on MR that neither was trained on.

    nice -n 10 .venv/bin/python experiments/shipped_models.py --out OUT [--slices 36]

``neural_v1`` was trained on ``../shared/data/dicom`` (7 sources), ``neural_v2`` (the default
since 2026-12-07) on all 13 sources of the leave-one-source-out benchmark, so no source of that
benchmark is unseen by v2. What neither saw: the brain-tumour slices of ``../shared/data/tumor``
(T1 contrast-enhanced, 512^2, two hospitals, stored as 8-bit JPEG, so the pixels carry JPEG's
block structure). ``--slices`` of them, spread evenly over the three classes, are coded lossless
and within tau=2 by the learned coder alone (``fallback=0``) with each model, every stream
decoded and checked, against JPEG XL effort 7 and JPEG-LS tau=2. Whether broader training
generalises is measured properly by ``neural_loso.py``; this is a check on one more unseen set.
Writes ``OUT/shipped_models.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import imagecodecs
import numpy as np
from tqdm import tqdm

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.metrics import max_abs_error

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECS = {
    "lossless": ("jxl", "neural:fallback=0,weights=neural_v1", "neural:fallback=0,weights=neural_v2"),
    "tau=2": ("jpegls:tau=2", "neural:tau=2,fallback=0,weights=neural_v1",
              "neural:tau=2,fallback=0,weights=neural_v2"),
}


def tumour_slices(count: int) -> list[np.ndarray]:
    """``count`` grey 8-bit slices, evenly spaced over the sorted files of the three classes."""
    files = sorted((DATA / "tumor").glob("*/*.jpg"), key=lambda p: (p.parent.name, int(p.stem)))
    picked = [files[i] for i in np.linspace(0, len(files) - 1, count).astype(int)]
    out = []
    for path in picked:
        image = imagecodecs.jpeg8_decode(path.read_bytes())
        out.append(np.ascontiguousarray(image if image.ndim == 2 else image[..., 0],
                                        dtype=np.uint8))
    return out


def coded_bits(spec: str, slices: list[np.ndarray], tau: int) -> int:
    codec = get_codec(spec)
    total = 0
    for image in slices:
        stream = codec.encode(image, 8)
        if max_abs_error(image, codec.decode(stream)) > tau:
            raise SystemExit(f"{spec}: a slice decodes outside tau={tau}")
        total += 8 * len(stream)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--slices", type=int, default=36)
    args = ap.parse_args()
    slices = tumour_slices(args.slices)
    pixels = sum(s.size for s in slices)
    results = {}
    for kind, specs in SPECS.items():
        for spec in tqdm(specs, desc=kind):
            results[spec] = coded_bits(spec, slices, 2 if kind == "tau=2" else 0) / pixels
    lines = [f"{len(slices)} tumour slices ({pixels / 1e6:.1f} Mpx, 8-bit), bits per pixel; "
             "ratio = neural / classical anchor", "",
             "| | anchor | anchor bpp | neural_v1 bpp | ratio | neural_v2 bpp | ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for kind, (anchor, v1, v2) in SPECS.items():
        a = results[anchor]
        lines.append(f"| {kind} | `{anchor}` | {a:.3f} | {results[v1]:.3f} | "
                     f"{results[v1] / a:.3f} | {results[v2]:.3f} | {results[v2] / a:.3f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shipped_models.md").write_text("\n".join(lines) + "\n")
    (args.out / "shipped_models.json").write_text(json.dumps(
        {"slices": len(slices), "pixels": pixels, "bpp": results}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
