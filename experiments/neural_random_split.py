"""A random split by series, through the two commands a user runs: ``fedcodec train``, then
``fedcodec bench --series-split``.

    nice -n 10 python experiments/neural_random_split.py --out out/neural_random_split

Trains the neural codec on a random half of the series of ``../shared/data/dicom`` (seed 0,
mosaics kept whole, one torch thread, the default recipe and its 30-minute budget), then codes
the held-out half with JPEG XL e7, the new model (lossless), JPEG-LS τ=2 and the model at τ=2,
and writes the ratios overall, per vendor and without GE (``random_split.md``, ``.json``).
Unlike ``neural_heldout.py``'s vendor-balanced folds, a random half can hold out most of one
vendor: that is what this measures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from neural_bench_folds import codec_label
from neural_dataset import DICOM_ROOT

PAIRS = (("lossless", "neural", "jxl"), ("tau=2", "neural tau=2", "jpegls tau=2"))


def vendor_of_series(split: dict) -> dict[str, str]:
    """Held-out series UID -> vendor (first folder of its path under the data root)."""
    return {s["series_uid"]: s["name"].split("/")[0] for s in split["heldout"]}


def totals_by_vendor(records: list[dict], vendors: dict[str, str]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for record in records:
        uid = record["slice_id"].rsplit("/", 1)[0]
        vendor = vendors.get(uid, "?")
        label = codec_label(record["codec"])
        totals[vendor][label] += record["bytes"]
        totals[vendor][label + " pixels"] += record["pixels"]
    return totals


def table(totals: dict[str, dict[str, int]]) -> tuple[list[str], dict]:
    groups = {"all": list(totals), **{v: [v] for v in sorted(totals)},
              "all but ge": [v for v in totals if v != "ge"]}
    lines = ["| held-out series | pixels | lossless vs `jxl` | τ=2 vs `jpegls:tau=2` |",
             "| --- | ---: | ---: | ---: |"]
    summary = {}
    for name, members in groups.items():
        summed = defaultdict(int)
        for vendor in members:
            for key, value in totals[vendor].items():
                summed[key] += value
        if not summed["jxl"]:
            continue
        ratios = {label: summed[ours] / summed[anchor] for label, ours, anchor in PAIRS}
        pixels = summed["jxl pixels"]
        summary[name] = {**ratios, "pixels": pixels}
        lines.append(f"| {name} | {pixels / 1e6:.2f} Mpx | {ratios['lossless']:.4f} | "
                     f"{ratios['tau=2']:.4f} |")
    return lines, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("out/neural_random_split"))
    ap.add_argument("--holdout", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    fedcodec = str(Path(sys.executable).with_name("fedcodec"))
    run = out / "run"
    if not (run / "weights.npz").exists():
        subprocess.run([fedcodec, "train", str(DICOM_ROOT), "--out", str(run), "--holdout",
                        str(args.holdout), "--seed", str(args.seed), "--keep-mosaics",
                        "--threads", "1", "--no-progress"], check=True)
    weights = run / "weights.npz"
    specs = ["jxl", f"neural:weights={weights}", "jpegls:tau=2", f"neural:tau=2,weights={weights}"]
    subprocess.run([fedcodec, "bench", str(DICOM_ROOT), "--series-split",
                    str(run / "split.json"), "--codecs", *specs, "--out", str(out / "bench"),
                    "--quiet", "--no-plots"], check=True)
    split = json.loads((run / "split.json").read_text())
    records = json.loads((out / "bench" / "results.json").read_text())["records"]
    totals = totals_by_vendor(records, vendor_of_series(split))
    lines, summary = table(totals)
    held = [s["name"].split("/")[0] for s in split["heldout"]]
    head = (f"Random split by series (seed {args.seed}, holdout {args.holdout}): "
            f"{len(split['train'])} series trained, {len(split['heldout'])} held out "
            f"({', '.join(f'{v} {held.count(v)}' for v in sorted(set(held)))}); bytes ratios, "
            "every held-out slice coded and checked by fedcodec bench.")
    text = "\n".join([head, "", *lines]) + "\n"
    (out / "random_split.md").write_text(text)
    (out / "random_split.json").write_text(json.dumps(summary, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
