"""Classical anchors for the neural codec, per slice: JPEG XL e7 lossless and JPEG-LS (tau 0,1,2,4).

Writes ``/tmp/fcn/baselines.json`` (or ``baselines_project.json``): {series name: {"jxl7": [bytes
per slice], "jls0": [...], ..., "pixels": pixels per slice}}.
Run: ``nice -n 10 python experiments/neural_baselines.py [issue|project]``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import imagecodecs
import numpy as np
from neural_dataset import load_items
from tqdm import tqdm

OUT = Path("/tmp/fcn/baselines.json")


def baselines_path(reader: str) -> Path:
    return OUT if reader == "issue" else OUT.with_name(f"baselines_{reader}.json")
TAUS = (0, 1, 2, 4)


def main() -> None:
    import sys

    reader = sys.argv[1] if len(sys.argv) > 1 else "issue"
    out = baselines_path(reader)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = json.loads(out.read_text()) if out.exists() else {}
    items = load_items(reader)
    for item in tqdm(items):
        if item.name in results:
            continue
        rec: dict[str, list] = {"jxl7": [], **{f"jls{t}": [] for t in TAUS}}
        for image in item.volume:
            rec["jxl7"].append(len(imagecodecs.jpegxl_encode(image, lossless=True, effort=7)))
            for tau in TAUS:
                data = imagecodecs.jpegls_encode(image, level=tau)
                if tau:
                    err = np.abs(imagecodecs.jpegls_decode(data).astype(np.int64) - image).max()
                    assert err <= tau, (item.name, tau, err)
                rec[f"jls{tau}"].append(len(data))
        rec["pixels"] = int(item.volume.shape[1] * item.volume.shape[2])
        results[item.name] = rec
        out.write_text(json.dumps(results))
    # timing on 256x256 slices (MP-RAGE): encode + decode, single call each
    mprage = next(i for i in items if "MP_RAGE" in i.name).volume
    for label, enc, dec in (
        ("jxl7", lambda im: imagecodecs.jpegxl_encode(im, lossless=True, effort=7), imagecodecs.jpegxl_decode),
        ("jls0", lambda im: imagecodecs.jpegls_encode(im), imagecodecs.jpegls_decode),
    ):
        t0 = time.perf_counter()
        for image in mprage[40:60]:
            dec(enc(image))
        print(f"{label}: encode+decode 256x256 {(time.perf_counter() - t0) / 20 * 1000:.1f} ms/slice")


if __name__ == "__main__":
    main()
