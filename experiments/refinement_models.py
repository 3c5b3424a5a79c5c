"""Would a progressive refinement layer code smaller with networks that see the coarse slice?

    nice -n 10 .venv/bin/python experiments/refinement_models.py [--out DIR] [--steps 800]

A refinement layer (0xA7) codes each pixel's bin inside the window the coarse layer left, with
the ordinary model's distribution restricted to the window; its network sees only what this
layer has decoded (and the previous slice), because the ordinary networks, given the coarse slice
as a reference, trust it too much (docs/bounded-error-lossy.md). The layered stream costs
1.02-1.06x the learned coder's single pass (``progressive_layers.py``). One candidate cause: the
coarse slice also tells where the pixels this layer has not reached yet lie, which the ordinary
network cannot use. This script trains networks that use it and measures them:

1. **Training** (``../shared/data/dicom``, the sources ``neural_v1`` was trained on, so none of the
   measured ones): up to 2^18 pixels of slices per series, each slice coded alone by
   ``neural_v1`` within the coarse bound ``tc`` (13, then 4) as a coarse layer codes it. The
   networks with one and two references start from ``neural_v1`` and are fine-tuned (``--steps``
   Adam steps each) with that coarse slice as their first reference (the previous original slice
   second), on the code length *inside the window* ``[c - tc, c + tc]``:
   ``-log2 p(x) + log2 p(window)``, computed in log space (a plain difference of sigmoids lets
   the network push both masses below any clamp and score zero). Count tables are then fitted
   to the quantised networks as ``fedcodec train`` fits them.
2. **Measuring**: on runs of 4 slices of ``philips-dwi``, ``enhanced`` and ``pypi-mr`` (as
   ``progressive_layers.py`` takes them), each slice coded alone within ``tc`` by ``neural_v1``,
   then refined to 4 (from 13) or to lossless (from 4) by the refinement encoder
   (``encode_refinement_adaptive``: best cell layout and scale offset) with ``neural_v1`` and
   with the trained model. Bytes of the refinement streams' payloads, per source.

Writes ``OUT/refinement_models.md`` and ``.json``.
"""

from __future__ import annotations

import v1_figures  # noqa: F401, I001 - neural_v1 is the coarse coder and the starting point

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fedcodec.client.training.data import load_training_series
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.neural import train
from fedcodec.shared.neural.adaptive_encoder import encode_refinement_adaptive
from fedcodec.shared.neural.codec import load_weights
from fedcodec.shared.neural.model import from_integer, to_integer
from fedcodec.shared.neural.slice_coder import EntropyModels, SliceParams
from fedcodec.shared.neural.tables import logistic_counts
from fedcodec.shared.neural.weights import NeuralWeights, shipped_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_report import report_table  # noqa: E402
from lossy_rd import load_source  # noqa: E402
from window_samples import WindowSamples, add_slice, empty_samples, log_mass, logistic  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("philips-dwi", "enhanced", "pypi-mr")
STEPS = ((13, 4), (4, 0))
"""(coarse bound, refined bound): the two refinements of the default layers 13-4-0."""


def window_bits(net, data, idx=None) -> torch.Tensor:
    """Bits to code ``x`` under the discretised logistic restricted to its window."""
    pick, mean, scale = logistic(net, data, idx)
    x = pick(data["target"])
    return (log_mass(mean, scale, pick(data["lo"]), pick(data["hi"]))
            - log_mass(mean, scale, x, x)) / math.log(2)


def coarse_slice(codec, image: np.ndarray, bits: int, tc: int) -> np.ndarray:
    """The slice coded alone within ``tc`` by ``codec``: the reconstruction a coarse layer holds."""
    return np.asarray(codec._encode_one(np.ascontiguousarray(image), bits, [], (), tc)[1],
                      dtype=np.int32)


def collect(series, tc: int, rng: np.random.Generator) -> dict[str, WindowSamples]:
    """Samples for the one- and two-reference networks, the coarse slice the first reference."""
    coarse_coder = get_codec(f"neural:tau={tc},fallback=0")
    out = empty_samples()
    for volume, bits in tqdm(series, desc=f"sampling, coarse bound {tc}", leave=False):
        per_series = max(1, (1 << 18) // (volume.shape[1] * volume.shape[2]))
        for index in np.sort(rng.choice(volume.shape[0], min(volume.shape[0], per_series),
                                        replace=False)):
            image = volume[index].astype(np.int32)
            coarse = coarse_slice(coarse_coder, volume[index], bits, tc)
            reference_sets = {1: [coarse]}
            if index:
                reference_sets[2] = [coarse, volume[index - 1].astype(np.int32)]
            add_slice(out, image, image, reference_sets, lambda x, c: (c - tc, c + tc), rng,
                      (1 << bits) - 1)
    return out


def train_refinement(series, tc: int, steps: int, seed: int) -> NeuralWeights:
    """Networks fine-tuned from neural_v1 on window code length; tables fitted to them."""
    v1 = NeuralWeights.load(shipped_path("neural_v1"))
    samples = collect(series, tc, np.random.default_rng(seed))
    ordinary_bits = train._bits
    train._bits = window_bits  # the trainer's loss, for this run only
    try:
        model, report = train.train_predictor(samples, hidden=48, epochs=25, max_steps=steps,
                                              min_steps=steps // 2, seed=seed,
                                              model=from_integer(v1))
    finally:
        train._bits = ordinary_bits
    print(f"coarse bound {tc}: window bits per pixel (training, float) "
          + json.dumps({k: round(v, 3) for k, v in report.items() if not k.endswith("steps")}),
          flush=True)
    meta = {"name": f"refine_from{tc}", "coarse_reference": tc}
    quantised = to_integer(model, logistic_counts(), meta)
    return NeuralWeights(quantised.nets, train.fit_tables(quantised, samples), meta)


def refinement_bytes(weights_models, runs, tc: int, tau: int) -> int:
    """Payload bytes of refining every slice of ``runs`` from ``tc`` to ``tau``."""
    weights, models = weights_models
    coarse_coder = get_codec(f"neural:tau={tc},fallback=0")
    total = 0
    for _, run, bits in runs:
        for i, image in enumerate(run):
            refs = [coarse_slice(coarse_coder, image, bits, tc)]
            if i:
                refs.append(run[i - 1].astype(np.int32))
            words, recon, _ = encode_refinement_adaptive(
                np.ascontiguousarray(image), SliceParams(bits, tau), refs, weights, models, tc)
            if np.abs(recon.astype(np.int64) - image).max() > tau:
                raise SystemExit("a refinement broke its bound")
            total += 4 * words.size
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    series = [(s.volume, s.bits) for source in sorted((DATA / "dicom").iterdir())
              for s in load_training_series(source)[0]]
    ordinary = load_weights(str(shipped_path("neural_v1")))
    rows = []
    for tc, tau in STEPS:
        refined = train_refinement(series, tc, args.steps, args.seed)
        refined_models = (refined, EntropyModels(refined))
        for source in SOURCES:
            runs = load_source(source, 2, 4)
            plain = refinement_bytes(ordinary, runs, tc, tau)
            trained = refinement_bytes(refined_models, runs, tc, tau)
            rows.append({"refinement": f"{tc} -> {tau}", "source": source,
                         "ordinary_bytes": plain, "refinement_model_bytes": trained,
                         "ratio": trained / plain})
            print(json.dumps(rows[-1]), flush=True)
    lines = ["| refinement | source | neural_v1 (bytes) | refinement model (bytes) | ratio |",
             "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {r['refinement']} | {r['source']} | {r['ordinary_bytes']} | "
              f"{r['refinement_model_bytes']} | {r['ratio']:.3f} |" for r in rows]
    report_table(lines, rows, args.out, "refinement_models")


if __name__ == "__main__":
    main()
