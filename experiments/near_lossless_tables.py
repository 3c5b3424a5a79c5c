"""Near-lossless coding with count tables (and networks) fitted to near-lossless coding itself.

    nice -n 10 .venv/bin/python experiments/near_lossless_tables.py [--taus 2,13] [--out DIR]

``neural:tau=T`` codes each pixel's cell of 2T+1 grey levels with the networks and count tables
trained for lossless coding: the networks were fed original neighbours, the tables are residual
histograms of lossless coding, reused for cells by scaling the predicted spread by 2T+1
(``slice_coder``). Near-lossless coding feeds the networks reconstructed neighbours and codes
cells. Two fits to that, for each bound T, on ``../shared/data/dicom`` (what ``neural_v1`` was
trained on; up to 2^18 pixels of slices per series, each slice and its reference slices coded
alone within T by ``neural_v1`` to get the reconstructions the walk sees):

* **tables at T**: ``neural_v1``'s networks, count tables fitted (``train.fit_tables`` with
  ``taus=(T,)``) to the cell indices they produce on reconstructed contexts;
* **networks and tables at T**: the networks fine-tuned from ``neural_v1`` (``--steps`` Adam
  steps each) on the code length of the T-cell around each pixel, ``-log2 p([x - T, x + T])``
  (log space), on reconstructed contexts; then tables fitted the same way.

Each is measured against ``neural_v1`` on the runs of ``lossy_rd.py``'s sources (MR none of them
was trained on: 2 series x 4 slices per source), coded as volumes by ``neural:tau=T,fallback=0``
and decoded, every pixel checked within T. Writes ``OUT/near_lossless_tables.md`` and ``.json``.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - neural_v1 is the starting point and the reference

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fedcodec.client.training.data import load_training_series
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.neural import train
from fedcodec.shared.neural.model import from_integer, to_integer
from fedcodec.shared.neural.tables import logistic_counts
from fedcodec.shared.neural.weights import NeuralWeights, shipped_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_report import report_table  # noqa: E402
from lossy_rd import load_source  # noqa: E402
from window_samples import WindowSamples, add_slice, empty_samples, log_mass, logistic  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("philips-dwi", "enhanced", "pypi-mr", "fieldmaps", "deidentified")


def cell_bits(net, data, idx=None) -> torch.Tensor:
    """Bits of the cell [lo, hi] under the discretised logistic the network predicts."""
    pick, mean, scale = logistic(net, data, idx)
    return -log_mass(mean, scale, pick(data["lo"]), pick(data["hi"])) / math.log(2)


def collect(series, tau: int, rng: np.random.Generator, weights: str = ""
            ) -> dict[str, WindowSamples]:
    """Samples of every network, contexts built from reconstructions within ``tau`` (coded by
    ``weights``, default the default model: ``neural_v1`` here)."""
    coder = get_codec(f"neural:tau={tau},fallback=0" + (f",weights={weights}" if weights else ""))
    out = empty_samples()
    for volume, bits in tqdm(series, desc=f"sampling at tau {tau}", leave=False):
        cache: dict[int, np.ndarray] = {}

        def recon(i: int) -> np.ndarray:
            if i not in cache:
                cache[i] = np.asarray(coder._encode_one(np.ascontiguousarray(volume[i]), bits,
                                                        [], (), tau)[1], dtype=np.int32)
            return cache[i]

        per_series = max(1, (1 << 18) // (volume.shape[1] * volume.shape[2]))
        for index in np.sort(rng.choice(volume.shape[0], min(volume.shape[0], per_series),
                                        replace=False)):
            reference_sets = {0: []}
            if index >= 1:
                reference_sets[1] = [recon(index - 1)]
            if index >= 2:
                reference_sets[2] = [recon(index - 2), recon(index - 1)]
            add_slice(out, recon(index), volume[index].astype(np.int32), reference_sets,
                      lambda x, c: (x - tau, x + tau), rng, (1 << bits) - 1)
    return out


def fitted_models(series, tau: int, steps: int, seed: int) -> dict[str, NeuralWeights]:
    """{"tables at T": ..., "networks and tables at T": ...} for bound ``tau``."""
    v1 = NeuralWeights.load(shipped_path("neural_v1"))
    samples = collect(series, tau, np.random.default_rng(seed))
    tables = train.fit_tables(v1, samples, taus=(tau,))
    ordinary_bits = train._bits
    train._bits = cell_bits  # the trainer's loss, for this run only
    try:
        model, _ = train.train_predictor(samples, hidden=48, epochs=25, max_steps=steps,
                                         min_steps=steps // 2, seed=seed, model=from_integer(v1))
    finally:
        train._bits = ordinary_bits
    quantised = to_integer(model, logistic_counts(), {"name": f"networks_at_tau{tau}"})
    return {"tables at T": NeuralWeights(v1.nets, tables, {"name": f"tables_at_tau{tau}"}),
            "networks and tables at T": NeuralWeights(
                quantised.nets, train.fit_tables(quantised, samples, taus=(tau,)),
                quantised.meta)}


def coded_bytes(spec: str, runs, tau: int) -> int:
    codec = get_codec(spec)
    total = 0
    for _, run, bits in runs:
        streams = codec.encode_volume(run, bits)
        if np.abs(codec.decode_volume(streams).astype(np.int64) - run).max() > tau:
            raise SystemExit(f"{spec} broke its bound")
        total += sum(map(len, streams))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--taus", default="2,13")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    series = [(s.volume, s.bits) for source in sorted((DATA / "dicom").iterdir())
              for s in load_training_series(source)[0]]
    runs = {source: load_source(source, 2, 4) for source in SOURCES}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tau in (int(t) for t in args.taus.split(",")):
            variants = {"neural_v1": "neural_v1"}
            for label, weights in fitted_models(series, tau, args.steps, args.seed).items():
                path = Path(tmp) / f"{weights.meta['name']}.npz"
                weights.save(path)
                variants[label] = str(path)
            for source, source_runs in runs.items():
                sizes = {label: coded_bytes(f"neural:tau={tau},fallback=0,weights={w}",
                                            source_runs, tau)
                         for label, w in variants.items()}
                rows.append({"tau": tau, "source": source, "bytes": sizes})
                print(json.dumps(rows[-1]), flush=True)
    labels = list(rows[0]["bytes"])
    lines = [f"| tau | source | {labels[0]} (bytes) | " + " | ".join(labels[1:]) + " |",
             "| ---: | --- | ---: | " + " | ".join("---:" for _ in labels[1:]) + " |"]
    for tau in dict.fromkeys(r["tau"] for r in rows):
        chosen = [r for r in rows if r["tau"] == tau]
        chosen.append({"tau": tau, "source": "**all**", "bytes": {
            label: sum(r["bytes"][label] for r in chosen) for label in labels}})
        for r in chosen:
            base = r["bytes"][labels[0]]
            lines.append(f"| {tau} | {r['source']} | {base} | " + " | ".join(
                f"{r['bytes'][label] / base:.3f}" for label in labels[1:]) + " |")
    report_table(lines, rows, args.out, "near_lossless_tables")


if __name__ == "__main__":
    main()
