"""The shipped ``neural`` models side by side on MR that neither was trained on.

    nice -n 10 .venv/bin/python experiments/shipped_models.py --out OUT [--slices 36]
        [--models A=WEIGHTS B=WEIGHTS]     (default: neural_v1 and neural_v2)

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
ANCHORS = {"lossless": "jxl", "tau=2": "jpegls:tau=2"}
NEURAL = {"lossless": "neural:fallback=0,weights={}", "tau=2": "neural:tau=2,fallback=0,weights={}"}


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
    ap.add_argument("--models", nargs="+", default=["neural_v1=neural_v1", "neural_v2=neural_v2"],
                    help="NAME=WEIGHTS (a shipped model's name or a weights file)")
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.models)
    slices = tumour_slices(args.slices)
    pixels = sum(s.size for s in slices)
    bpp: dict[str, dict[str, float]] = {}
    for kind, anchor in ANCHORS.items():
        tau = 2 if kind == "tau=2" else 0
        specs = {"anchor": anchor, **{name: NEURAL[kind].format(weights)
                                      for name, weights in models.items()}}
        bpp[kind] = {name: coded_bits(spec, slices, tau) / pixels
                     for name, spec in tqdm(specs.items(), desc=kind)}
    header = "".join(f" {name} bpp | ratio |" for name in models)
    lines = [f"{len(slices)} tumour slices ({pixels / 1e6:.1f} Mpx, 8-bit), bits per pixel; "
             "ratio = neural / classical anchor", "",
             f"| | anchor | anchor bpp |{header}",
             "| --- | --- | ---: |" + " ---: | ---: |" * len(models)]
    for kind, anchor in ANCHORS.items():
        a = bpp[kind]["anchor"]
        cells = "".join(f" {bpp[kind][name]:.3f} | {bpp[kind][name] / a:.3f} |" for name in models)
        lines.append(f"| {kind} | `{anchor}` | {a:.3f} |{cells}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shipped_models.md").write_text("\n".join(lines) + "\n")
    (args.out / "shipped_models.json").write_text(json.dumps(
        {"slices": len(slices), "pixels": pixels, "models": models, "bpp": bpp}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
