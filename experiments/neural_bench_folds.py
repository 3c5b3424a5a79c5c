"""The held-out protocol through the product's own benchmark: ``fedcodec bench`` once per fold.

    nice -n 10 python experiments/neural_bench_folds.py --weights-dir out/neural_heldout \
        --out out/neural_bench_folds

Takes the two fold models that ``neural_heldout.py`` trained (``w_fold0.npz``, ``w_fold1.npz``),
writes one ``split.json`` per fold in the format ``fedcodec train`` writes (fold membership from
``neural_dataset.FOLD1_KEYS``, series found by the product's DICOM reader), runs
``fedcodec bench --series-split`` on each fold with the model trained on the other one, and sums
both runs: neural vs JPEG XL lossless and vs JPEG-LS at tau=2, as ``fedcodec bench`` codes them
(JPEG-LS at the real bit depth, a stronger anchor than ``neural_baselines.py``'s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from neural_dataset import DICOM_ROOT, _fold

from fedcodec.shared.dicom import read_series


def codec_label(spec: str) -> str:
    """``neural:tau=2,weights=...`` -> ``neural tau=2``: a codec spec without its weights path."""
    return spec.split(":")[0] + (" tau=2" if "tau=2" in spec else "")


def write_splits(out: Path) -> dict[int, Path]:
    series, _ = read_series(DICOM_ROOT, split_mosaics=False)
    sides: dict[int, list[dict]] = {0: [], 1: []}
    for s in series:
        name = str(s.source_files[0].relative_to(DICOM_ROOT))
        sides[_fold(name)].append({"name": name, "series_uid": s.series_uid,
                                   "slices": int(s.volume.shape[0])})
    paths = {}
    for held in (0, 1):
        paths[held] = out / f"split_fold{held}.json"
        paths[held].write_text(json.dumps({"by": "neural_dataset.FOLD1_KEYS",
                                           "train": sides[1 - held], "heldout": sides[held]},
                                          indent=1))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights-dir", type=Path, required=True, help="neural_heldout.py's --out")
    ap.add_argument("--out", type=Path, default=Path("out/neural_bench_folds"))
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    fedcodec = Path(sys.executable).with_name("fedcodec")
    totals: dict[str, int] = defaultdict(int)
    for held, split in write_splits(out).items():
        weights = (args.weights_dir / f"w_fold{1 - held}.npz").resolve()
        specs = ["jxl", f"neural:weights={weights}", "jpegls:tau=2",
                 f"neural:tau=2,weights={weights}"]
        bench_out = out / f"bench_fold{held}"
        subprocess.run([str(fedcodec), "bench", str(DICOM_ROOT), "--series-split", str(split),
                        "--codecs", *specs, "--out", str(bench_out), "--quiet", "--no-plots"],
                       check=True)
        for record in json.loads((bench_out / "results.json").read_text())["records"]:
            name = codec_label(record["codec"])
            totals[name] += record["bytes"]
            totals[name + " pixels"] += record["pixels"]
    rows = [("lossless", "neural", "jxl"), ("tau=2", "neural tau=2", "jpegls tau=2")]
    lines = ["| | neural bpp | anchor | anchor bpp | ratio |", "| --- | ---: | --- | ---: | ---: |"]
    for label, ours, anchor in rows:
        bpp = 8 * totals[ours] / totals[ours + " pixels"]
        ref = 8 * totals[anchor] / totals[anchor + " pixels"]
        lines.append(f"| {label} | {bpp:.3f} | `{anchor.replace(' ', ':')}` | {ref:.3f} | "
                     f"{totals[ours] / totals[anchor]:.4f} |")
    (out / "bench_folds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
