"""Which period should a multi-volume series be coded with: headers, pixels, or trial coding?

    nice -n 5 python experiments/neural_geometry_period.py [--max-slices 160] [--out DIR]

For every series of ``../shared/data/dicom`` and ``dicom-more`` with more than one period
candidate (:func:`period_candidates`: the period detected from the pixels, the headers' slice
positions per volume when they disagree with it, and the previous slice alone), the learned coder alone (``fallback=0``,
so the choice is not hidden behind classical streams) codes the series with each candidate,
lossless and at tau=2, and with the period the encoder now chooses from three sample slices
(:func:`choose_period`). Every stream is decoded and checked. Writes ``periods.json`` and
``periods.md`` (per series bytes / detected-period bytes; totals), so the docs' figures come
from here.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - the figures of this script were measured with neural_v1

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.neural.period_choice import choose_period, period_candidates
from fedcodec.shared.sources import read_stacks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FOLDERS = ("dicom/ge", "dicom/philips", "dicom/siemens", "dicom/toshiba", "dicom/edge12",
           "dicom-more/deidentified", "dicom-more/enhanced", "dicom-more/fieldmaps",
           "dicom-more/philips-dwi", "dicom-more/transfer-syntaxes")
TAUS = (0, 2)


def series_to_try(max_slices: int, folders: tuple[str, ...] = FOLDERS
                  ) -> list[tuple[str, np.ndarray, int, int | None]]:
    """(name, volume, bits, header period) of every series with more than one candidate."""
    out = []
    for folder in folders:
        for stack in read_stacks(DATA / folder)[0]:
            volume = stack.codec_volume()[0][:max_slices]
            if volume.shape[0] < 4:
                continue
            if len(period_candidates(volume, stack.positions_per_volume)) > 1:
                out.append((f"{folder}/{stack.description or stack.name}"[:70],
                            np.ascontiguousarray(volume), stack.bits,
                            stack.positions_per_volume))
    return out


def coded_bytes(volume: np.ndarray, bits: int, tau: int, period: int) -> int:
    codec = get_codec(f"neural:fallback=0,tau={tau},period={period}")
    streams = codec.encode_volume(volume, bits)
    decoded = codec.decode_volume(streams)
    if np.abs(decoded.astype(np.int64) - volume).max() > tau:
        raise SystemExit(f"period {period}, tau {tau}: round trip failed")
    return sum(map(len, streams))


def chosen_period(volume: np.ndarray, bits: int, tau: int, header: int | None) -> int:
    codec = get_codec(f"neural:fallback=0,tau={tau}").with_volume_layout(header)
    return codec.volume_period(volume, bits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-slices", type=int, default=160)
    ap.add_argument("--out", type=Path, default=Path("runs/neural_geometry_period"))
    ap.add_argument("--only", nargs="+", default=list(FOLDERS), metavar="FOLDER",
                    help="folders of ../shared/data to measure (default: all of FOLDERS)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    started = time.perf_counter()
    todo = series_to_try(args.max_slices, tuple(args.only))
    for name, volume, bits, header in tqdm(todo, desc="series", unit="series"):
        candidates = period_candidates(volume, header)
        row = {"series": name, "slices": int(volume.shape[0]), "shape": list(volume.shape[1:]),
               "header": header, "detected": candidates[0], "candidates": candidates}
        for tau in TAUS:
            sizes = {p: coded_bytes(volume, bits, tau, p) for p in candidates
                     if p < volume.shape[0]}
            chosen = chosen_period(volume, bits, tau, header)
            if chosen not in sizes:
                sizes[chosen] = coded_bytes(volume, bits, tau, chosen)
            row[f"tau{tau}"] = {"bytes": {str(p): b for p, b in sizes.items()},
                                "chosen": chosen, "best": min(sizes, key=sizes.get)}
        rows.append(row)
        tqdm.write(f"{name}: candidates {candidates}; " + "; ".join(
            f"tau={t}: " + ", ".join(f"{p}: {b}" for p, b in row[f"tau{t}"]["bytes"].items())
            + f" -> chose {row[f'tau{t}']['chosen']}" for t in TAUS))
    result = {"rows": rows, "max_slices": args.max_slices,
              "minutes": (time.perf_counter() - started) / 60}
    (args.out / "periods.json").write_text(json.dumps(result, indent=1))
    (args.out / "periods.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = [f"Learned coder alone, first {result['max_slices']} slices per series; bytes relative "
             "to the pixel-detected period (the previous default).", "",
             "| series | slices | detected / header | " + " | ".join(
                 f"tau={t}: header, prev. slice, chosen (period)" for t in TAUS) + " |",
             "| --- | ---: | --- | " + " | ".join("---" for _ in TAUS) + " |"]
    totals = {t: {"detected": 0, "header": 0, "chosen": 0, "best": 0} for t in TAUS}
    for row in result["rows"]:
        cells = []
        for t in TAUS:
            info = row[f"tau{t}"]
            sizes = {int(p): b for p, b in info["bytes"].items()}
            base = sizes[row["detected"]]
            header = row["header"] if row["header"] in sizes else row["detected"]
            totals[t]["detected"] += base
            totals[t]["header"] += sizes[header]
            totals[t]["chosen"] += sizes[info["chosen"]]
            totals[t]["best"] += min(sizes.values())
            prev = f"{sizes[1] / base:.4f}" if 1 in sizes else "-"
            cells.append(f"{sizes[header] / base:.4f}, {prev}, {sizes[info['chosen']] / base:.4f}"
                         f" ({info['chosen']})")
        lines.append(f"| {row['series']} | {row['slices']} | {row['detected']} / "
                     f"{row['header']} | " + " | ".join(cells) + " |")
    lines.append("")
    for t in TAUS:
        d = totals[t]
        lines.append(f"tau={t}, all these series: header period {d['header'] / d['detected']:.4f}, "
                     f"chosen {d['chosen'] / d['detected']:.4f}, best candidate per series "
                     f"{d['best'] / d['detected']:.4f} of the detected period's bytes.")
    lines.append(f"\n{result['minutes']:.0f} min.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
