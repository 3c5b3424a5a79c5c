"""Fit near-lossless count tables, one set per bound of a ladder, to a model; write the model
with them (``NeuralWeights.cell_counts``).

    nice -n 10 .venv/bin/python experiments/cell_tables.py --weights neural_v2 --sources all \\
        --out shared/neural/weights/neural_v3.npz          # the shipped neural_v3
    nice -n 10 .venv/bin/python experiments/cell_tables.py --weights neural_v1 --sources dicom \\
        --out /tmp/neural_v1_cells.npz                     # v1's sources only: for measuring

A stream at bound tau codes cells of 2 tau + 1 grey levels. With the lossless tables it scales
the predicted spread by 2 tau + 1 and reads the lossless residual shape; tables fitted to cells
on reconstructed contexts code 0.6-3.6 % smaller on MR they never saw, more as tau grows
(``near_lossless_tables.py``). For each bound T of ``--ladder``: up to 2^18 pixels of slices per
series of ``--sources`` (``dicom``: the 7 folders of ``../shared/data/dicom``, what
``neural_v1`` was trained on; ``all``: the 13 sources of the leave-one-source-out benchmark, read
as ``neural_loso.py`` reads them, what ``neural_v2`` was trained on), each slice and its
reference slices coded within T by the model (``fallback=0``) to get the contexts its walk sees,
and the count tables fitted (``train.fit_tables`` at T) to the cells its networks give there;
the centre-phase table of every scale bin (the only ones cells use) is kept. The networks and
lossless tables are the model's own, so lossless streams are unchanged; the new model has
another id, so streams of the old one still decode with its tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fedcodec.shared.neural import train
from fedcodec.shared.neural.tables import CENTRE_PHASE, N_BINS, PHASES
from fedcodec.shared.neural.weights import NeuralWeights, shipped_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from near_lossless_tables import collect  # noqa: E402
from neural_loso import DICOM_SOURCES, PYPI, load_source  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LADDER = "1,2,4,8,16,32"


def training_series(sources: str) -> list[tuple[np.ndarray, int]]:
    names = [n for n in DICOM_SOURCES if sources == "all" or DICOM_SOURCES[n].startswith("dicom/")]
    if sources == "all":
        names.append(PYPI)
    return [(stack.volume, stack.bits) for name in names
            for stack in load_source(name, DATA, None)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="neural_v2", help="a shipped model's name or a file")
    ap.add_argument("--sources", choices=("dicom", "all"), default="all")
    ap.add_argument("--ladder", default=LADDER, help="bounds, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None, help="the model's name in its meta (default: --out's)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="a model with the same networks whose tables to keep beside the new "
                    "bounds (extends a ladder without refitting it)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    path = shipped_path(args.weights) or Path(args.weights)
    base = NeuralWeights.load(path)
    if base.cell_counts:
        raise SystemExit(f"{args.weights} already has near-lossless tables")
    series = training_series(args.sources)
    ladder = sorted({int(b) for b in args.ladder.split(",")})
    cells = {}
    if args.keep is not None:
        kept = NeuralWeights.load(args.keep)
        if kept.counts.tolist() != base.counts.tolist() or any(
                kept.nets[k].weights[0].tolist() != net.weights[0].tolist()
                for k, net in base.nets.items()):
            raise SystemExit(f"{args.keep} has other networks or tables than {args.weights}")
        cells.update(kept.cell_counts)
    for bound in ladder:
        started = time.perf_counter()
        samples = collect(series, bound, np.random.default_rng(args.seed), weights=str(path))
        full = train.fit_tables(base, samples, taus=(bound,))
        cells[bound] = full[np.arange(N_BINS) * PHASES + CENTRE_PHASE]
        print(f"bound {bound}: tables fitted to "
              f"{sum(sum(map(len, s.target)) for s in samples.values())} pixels in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    meta = {**base.meta, "name": args.name or args.out.stem,
            "cell_tables": {"from": base.model_id.hex(), "sources": args.sources,
                            "ladder": sorted(cells), "seed": args.seed}}
    model = NeuralWeights(base.nets, base.counts, meta, cells)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(json.dumps({"out": str(args.out), "model_id": model.model_id.hex(),
                      "from": base.model_id.hex(), "bytes": args.out.stat().st_size}))


if __name__ == "__main__":
    main()
