"""Feature set 1 against feature set 2 of the neural coder, on sources neither model saw.

    nice -n 10 python experiments/neural_feature_sets.py --out out/neural_feature_sets

The fast fold of issue 11's context-model work: both models train on every source of the
leave-one-source-out benchmark (``neural_loso.py``) except the three that miss the per-source cap
there (``siemens_b``, ``deidentified``, ``pypi-mr``), with the same budget as a LOSO fold
(hidden 48, ``--steps`` Adam steps per network, at most ``--cap`` samples per network) and **the
same samples**: every source is sampled once with feature set 2, whose context vector is set 1's
followed by the new inputs, so set 1's samples are the same pixels with the extra columns
dropped. Then both models code the first ``--max-slices`` slices of every series of the three
held-out sources (the learned coder alone, ``fallback=0``; lossless and tau=2); real stream bytes
are counted and every slice is decoded and checked. Writes ``OUT/feature_sets.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neural_loso import (  # noqa: E402
    DATA,
    DICOM_SOURCES,
    NEAR_ANCHOR,
    PYPI,
    TAU,
    anchor_bytes,
    best_lossless,
    capped,
    load_source,
    neural_bytes,
)

HELD = ("siemens_b", "deidentified", PYPI)
SAMPLE_FIELDS = ("features", "target", "mu0", "s16", "log_s16", "maxval")


def sampled(name: str, cache: Path, data: Path, series_pixels: int) -> dict:
    """Feature-set-2 samples of one source, as ``neural_loso.source_samples`` draws them."""
    from fedcodec.shared.neural.train import Samples, collect_samples

    path = cache / f"{name}.npz"
    if not path.exists():
        stacks = load_source(name, data, None)
        samples = collect_samples([(st.volume, st.bits) for st in stacks], 1 / 8, series_pixels,
                                  0, False, feature_set=2)
        flat = {f"{k}/{f}": a for k, s in samples.items() if s.target
                for f, a in s.arrays().items()}
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path.with_suffix(".tmp.npz"), **flat)
        path.with_suffix(".tmp.npz").rename(path)
    loaded = np.load(path)
    out = {}
    for key in {k.split("/")[0] for k in loaded.files}:
        out[key] = Samples(**{f: [loaded[f"{key}/{f}"]] for f in SAMPLE_FIELDS})
    return out


def as_set1(samples: dict) -> dict:
    """The same pixels with set 1's context (set 2's columns after set 1's dropped)."""
    from fedcodec.shared.neural.features import feature_count
    from fedcodec.shared.neural.geometry import GROUPS
    from fedcodec.shared.neural.train import Samples

    groups = {g.name: g for g in GROUPS}
    out = {}
    for key, s in samples.items():
        width = feature_count(groups[key[0]], int(key[1:]), 1)
        fields = {f: list(getattr(s, f)) for f in SAMPLE_FIELDS}
        fields["features"] = [a[:, :width] for a in s.features]
        out[key] = Samples(**fields)
    return out


def train(samples: dict, path: Path, steps: int, hidden: int, name: str, seed: int = 0) -> float:
    """Train one model on ``samples`` (a LOSO fold's recipe), write it, return CPU seconds."""
    import torch

    from fedcodec.shared.neural.train import PredictorTrainer, TrainSettings, build_weights

    if path.exists():
        return 0.0
    torch.set_num_threads(1)
    started = time.process_time()
    settings = TrainSettings(hidden=hidden, epochs=25, batch=4096, seed=seed, time_budget_s=1e9,
                             max_steps=steps, min_steps=steps)
    trainer = PredictorTrainer(samples, settings)
    for _ in trainer.run():
        pass
    weights = build_weights(trainer.model, samples, {"name": name, "steps": steps,
                                                     "hidden": hidden})
    path.parent.mkdir(parents=True, exist_ok=True)
    weights.save(path.with_suffix(".tmp.npz"))
    path.with_suffix(".tmp.npz").rename(path)
    return time.process_time() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("out/neural_feature_sets"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=48)
    ap.add_argument("--cap", type=int, default=1 << 18)
    ap.add_argument("--series-pixels", type=int, default=1 << 20)
    ap.add_argument("--max-slices", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0,
                    help="training seed (init, batches, the capped draw): run two to see the noise")
    ap.add_argument("--held", default=",".join(HELD), help="comma-separated held-out sources")
    args = ap.parse_args()
    out = args.out.resolve()
    held = [h for h in args.held.split(",") if h]
    train_names = [n for n in [*DICOM_SOURCES, PYPI] if n not in held]
    from fedcodec.shared.neural.train import merge_samples

    started = time.perf_counter()
    merged = None
    budget = f"s{args.steps}h{args.hidden}c{args.cap}-without-{'+'.join(held)}"
    budget += f"-seed{args.seed}" if args.seed else ""
    paths = {fs: out / "models" / f"set{fs}.{budget}.npz" for fs in (1, 2)}
    if not all(p.exists() for p in paths.values()):
        merged = capped(merge_samples([sampled(n, out / "samples", args.data, args.series_pixels)
                                       for n in train_names]), args.cap, args.seed)
        print(f"sampled {len(train_names)} sources: {time.perf_counter() - started:.0f} s",
              flush=True)
    cpu = {}
    for fs, path in paths.items():
        cpu[fs] = train(merged if fs == 2 else as_set1(merged), path, args.steps, args.hidden,
                        f"set{fs}-{budget}", args.seed) if merged is not None else 0.0
        print(f"set {fs} model: {cpu[fs]:.0f} CPU s", flush=True)
    rows = []
    for name in held:
        stacks = load_source(name, args.data, args.max_slices)
        anchors = anchor_bytes(stacks, out / "anchors" / f"{name}.first{args.max_slices}.json")
        pixels = int(sum(v.size for _, v, _, _ in stacks))
        row = {"source": name, "pixels": pixels,
               "slices": sum(v.shape[0] for _, v, _, _ in stacks),
               "best": best_lossless({"anchors": {s: sum(b) for s, b in anchors.items()}}),
               "jpegls_tau2": sum(anchors[NEAR_ANCHOR])}
        for fs, path in paths.items():
            for tau in (0, TAU):
                spec = f"neural:fallback=0,weights={path}" + (f",tau={tau}" if tau else "")
                sizes, _, seconds = neural_bytes(stacks, spec, tau)
                row[f"set{fs}_tau{tau}"] = sum(sizes)
                row[f"set{fs}_tau{tau}_seconds"] = round(seconds, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = ["| source (held out) | slices | best classical bpp | set 1 bpp | set 2 bpp | set 2 / "
             "set 1 | set 1 / best | set 2 / best | set 1 tau=2 / JPEG-LS | set 2 tau=2 / "
             "JPEG-LS |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    tot = {k: 0 for k in ("px", "best", "jls", "10", "20", "12", "22")}
    for r in rows:
        best = r["best"][1]
        for key, value in (("px", r["pixels"]), ("best", best), ("jls", r["jpegls_tau2"]),
                           ("10", r["set1_tau0"]), ("20", r["set2_tau0"]),
                           ("12", r[f"set1_tau{TAU}"]), ("22", r[f"set2_tau{TAU}"])):
            tot[key] += value
        lines.append(f"| {r['source']} | {r['slices']} | {8 * best / r['pixels']:.3f} "
                     f"({r['best'][0]}) | {8 * r['set1_tau0'] / r['pixels']:.3f} | "
                     f"{8 * r['set2_tau0'] / r['pixels']:.3f} | "
                     f"{r['set2_tau0'] / r['set1_tau0']:.4f} | {r['set1_tau0'] / best:.3f} | "
                     f"{r['set2_tau0'] / best:.3f} | {r[f'set1_tau{TAU}'] / r['jpegls_tau2']:.3f}"
                     f" | {r[f'set2_tau{TAU}'] / r['jpegls_tau2']:.3f} |")
    lines.append(f"| **pooled** | {sum(r['slices'] for r in rows)} | "
                 f"{8 * tot['best'] / tot['px']:.3f} | {8 * tot['10'] / tot['px']:.3f} | "
                 f"{8 * tot['20'] / tot['px']:.3f} | {tot['20'] / tot['10']:.4f} | "
                 f"{tot['10'] / tot['best']:.3f} | {tot['20'] / tot['best']:.3f} | "
                 f"{tot['12'] / tot['jls']:.3f} | {tot['22'] / tot['jls']:.3f} |")
    text = "\n".join(lines)
    (out / f"feature_sets.{budget}.md").write_text(text + "\n")
    (out / f"feature_sets.{budget}.json").write_text(json.dumps(
        {"rows": rows, "held": held, "steps": args.steps, "hidden": args.hidden, "cap": args.cap,
         "seed": args.seed, "max_slices": args.max_slices, "train_cpu_seconds": cpu,
         "wall_seconds": round(time.perf_counter() - started)}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
