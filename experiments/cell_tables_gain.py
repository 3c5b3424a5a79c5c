"""Bytes of a model with near-lossless tables against the same model without them, per series.

    nice -n 10 .venv/bin/python experiments/cell_tables_gain.py [--taus 2,13,40,200,717] \\
        [--models neural_v2,neural_v3] [--out DIR]

``neural_v3`` is ``neural_v2``'s networks and lossless tables plus near-lossless tables per
bound (``cell_tables.py``), which a slice uses only where they estimate shorter (a stream flag).
So the bytes differ only by the tables, and a ratio above 1 on a series is where the per-slice
estimate chose wrong. Series: the first 6 slices of the first 5 GE series of
``../shared/data/dicom/ge``, and the runs of ``lossy_rd.py`` for the PyPI MR and the
de-identified slices (2 series x 4 slices), each coded as a volume by
``neural:tau=T,fallback=0`` (every pixel checked within T). Both models were trained or fitted
on these sources: this measures the choice, not generalisation (``lossy_rd.py`` with
``FEDCODEC_NEURAL_WEIGHTS`` set to ``neural_v1`` and to its own tables fitted on ``dicom/``
measures that). Writes ``OUT/cell_tables_gain.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.sources import read_stacks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_report import report_table  # noqa: E402
from lossy_rd import load_source  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def series_runs() -> list[tuple[str, np.ndarray, int]]:
    runs = []
    for i, stack in enumerate(read_stacks(DATA / "dicom" / "ge")[0][:5]):
        volume, _ = stack.codec_volume()
        runs.append((f"ge-{i}", np.ascontiguousarray(volume[:6]), stack.bits))
    for source in ("pypi-mr", "deidentified"):
        runs += [(f"{source}-{i}", run, bits)
                 for i, (_, run, bits) in enumerate(load_source(source, 2, 4))]
    return runs


def coded_bytes(spec: str, volume: np.ndarray, bits: int, tau: int) -> int:
    codec = get_codec(spec)
    streams = codec.encode_volume(volume, bits)
    if np.abs(codec.decode_volume(streams).astype(np.int64) - volume).max() > tau:
        raise SystemExit(f"{spec} broke its bound")
    return sum(map(len, streams))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--taus", default="2,13,40,200,717")
    ap.add_argument("--models", default="neural_v2,neural_v3", help="without,with the tables")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    without, with_tables = args.models.split(",")
    runs = series_runs()
    rows = []
    for tau in (int(t) for t in args.taus.split(",")):
        sizes = {name: [coded_bytes(f"neural:tau={tau},fallback=0,weights={model}", v, b, tau)
                        for _, v, b in runs] for name, model in (("without", without),
                                                                ("with", with_tables))}
        rows.append({"tau": tau, "series": [name for name, _, _ in runs], **sizes})
        ratios = np.array(sizes["with"]) / np.array(sizes["without"])
        print(f"tau {tau}: total {sum(sizes['with']) / sum(sizes['without']):.4f}, series "
              + " ".join(f"{r:.3f}" for r in ratios), flush=True)
    names = rows[0]["series"]
    lines = ["| tau | total | " + " | ".join(names) + " |",
             "| ---: | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for r in rows:
        ratios = np.array(r["with"]) / np.array(r["without"])
        lines.append(f"| {r['tau']} | {sum(r['with']) / sum(r['without']):.3f} | "
                     + " | ".join(f"{x:.3f}" for x in ratios) + " |")
    report_table(lines, rows, args.out, "cell_tables_gain")


if __name__ == "__main__":
    main()
