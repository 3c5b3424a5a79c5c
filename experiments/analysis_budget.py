"""Budget curves, a fair pixel baseline, speed against classical decoding, and a cross-dataset
protocol for compressed-domain classification (issue 15, item 2).

    nice -n 10 .venv/bin/python experiments/analysis_budget.py --out OUT [--quick]

What it does, on ``../shared/data/tumor`` (3 classes, 512² JPEG; patient ids lost):

1. **Two data sets from one.** The files keep the source's numbering, in which a patient's slices
   are consecutive. Per class, the first 80 % of the file numbers form data set *A*, the last
   20 % data set *B* (mostly other patients: a cut may split at most one patient per class).
   Both are written as ImageFolder trees of symlinks with class names (``A/glioma/...``), so
   ``fedcodec analyze train --data A`` / ``analyze eval --data B`` run on them as on any folder.
   ``--per-class-a`` / ``--per-class-b`` take evenly spaced subsets (coding costs CPU).
2. **Curves along one run per seed.** A's seeded 70/15/15 split; each classifier trains for
   ``--epochs`` (one-cycle schedule) and at every checkpoint epoch (8, 16, 32, 64) the model that
   early stopping on validation would have kept *up to then* is tested on A's test part and on B.
   Classifiers (``--kinds``): the latent ``gn-stats`` (entropy-decoded ``neural-lossy``
   latents, flips); a standard pixel baseline: a small ResNet (``PixelResNet``) on slices
   resized to ``--pixel-size`` (128) with flips and random shifts (width 32: 0.30 M
   parameters); and ``latent-resnet``, the same ResNet on the latent grid (1x1 stem, flips and
   shifts of 2 latent cells), so latents and pixels are compared at equal capacity. Same
   optimiser, batch and seeds. ``--patience`` stops a run after that many epochs without a better validation
   accuracy (later checkpoints then report the kept model). Runs are independent: ``--jobs``
   forked processes (one torch thread each) train them at once on the arrays loaded once.
   Where the time goes: coding is done once and cached by content (``--cache``; a re-run codes
   nothing), pixels are loaded and resized once, test sets are evaluated only at the
   checkpoints; ``profile`` in the results gives the seconds per step, the seconds per epoch of
   every run and the time the full protocol (every slice, 3 seeds) would take.
3. **Speed, bitstream to label, one image at a time, 1 thread**: latent path (entropy decode +
   classifier) vs classical lossless decode (JPEG-LS, HTJ2K) + resize + ResNet vs learned decode
   (``neural-lossy`` synthesis) + resize + ResNet.
4. **The CLI on the protocol**: ``fedcodec analyze train --data A`` then ``analyze eval --data B``
   (small ``--limit``, it checks the commands and the class mapping, not accuracy).

Writes ``OUT/results.json``, ``OUT/analysis_budget.md`` and ``OUT/budget_curves.png``. The run
stops starting new trainings after ``--max-minutes`` and says which ones it skipped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "tumor"
NAMES = {"0": "pituitary", "1": "meningioma", "2": "glioma"}
CODEC = "neural-lossy"
KINDS = ("pixel-decoded", "pixel", "latent-resnet", "latent")
"""The classifiers, longest to train first (the order runs are handed to the --jobs processes).
``pixel-decoded``: the pixel ResNet trained and tested on the ``neural-lossy`` reconstructions
(what the latents can carry at their rate; not in the default ``--kinds``: decoding every slice
costs ~0.3 s each)."""
DEFAULT_KINDS = KINDS[1:]
CHECKPOINTS = (8, 16, 32, 64)


def build_protocol(out: Path, a_fraction: float, per_a: int, per_b: int) -> tuple[Path, Path]:
    """Symlinked ImageFolder trees ``out/A`` and ``out/B`` split by file number per class."""
    a_root, b_root = out / "A", out / "B"
    for folder, name in NAMES.items():
        files = sorted((DATA / folder).glob("*.jpg"), key=lambda p: int(p.stem))
        cut = round(a_fraction * len(files))
        for root, chosen, limit in ((a_root, files[:cut], per_a), (b_root, files[cut:], per_b)):
            if limit and limit < len(chosen):
                chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, limit).round()
                          .astype(int)]
            target = root / name
            target.mkdir(parents=True, exist_ok=True)
            for path in chosen:
                link = target / path.name
                if not link.exists():
                    link.symlink_to(path)
    return a_root, b_root


def pixels_at(root: Path, images, size: int) -> np.ndarray:
    """Slices under the fit policy, then resized to ``size`` (the pixel baseline's input)."""
    from fedcodec.shared.analysis.dataset import load_image
    from fedcodec.shared.analysis.image_input import InputPolicy, resize_longer_side

    policy = InputPolicy()
    return np.stack([resize_longer_side(load_image(root, i, policy), size) for i in images])


def _decode_resized(job: tuple[bytes, int]) -> np.ndarray:
    from fedcodec.shared.analysis.image_input import resize_longer_side
    from fedcodec.shared.analysis.latents import latent_extractor

    stream, size = job
    return resize_longer_side(np.asarray(latent_extractor(CODEC).decode(stream), np.uint8), size)


def decoded_pixels(coded: dict, size: int, workers: int, cache: Path) -> dict:
    """Every part's ``neural-lossy`` reconstructions resized to ``size``, cached in ``cache``."""
    from tqdm import tqdm

    if cache.exists():
        loaded = np.load(cache)
        if all(p in loaded and len(loaded[p]) == len(c.streams) for p, c in coded.items()):
            return {p: loaded[p] for p in coded}
    out = {}
    # spawn, not fork: this process has started torch's OpenMP threads, and forked workers that
    # run torch then hang on them
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for part, c in coded.items():
            jobs = [(bytes(s), size) for s in c.streams]
            out[part] = np.stack(list(tqdm(pool.map(_decode_resized, jobs, chunksize=8),
                                           total=len(jobs), desc=f"decoding {part}")))
    np.savez(cache, **out)
    return out


_DATA: dict = {}
"""The loaded data set, set once before the training processes fork (inherited, never pickled)."""


def train_curve(kind: str, seed: int, epochs: int, checkpoints, patience: int,
                deadline: float) -> dict:
    """One run; test accuracy (A test, B) of the best-on-validation model at each checkpoint.

    With ``patience`` the run stops after that many epochs without a better validation accuracy;
    the checkpoints it did not reach get the kept model's accuracies (what early stopping gives
    at any later budget). Past ``deadline`` (``time.time()``) the run is not started.
    """
    from fedcodec.client.analysis.training import TrainConfig, predict, train_classifier
    from fedcodec.shared.analysis.classifier import (
        GN_STATS,
        LATENT,
        PIXEL,
        RESNET,
        ClassifierConfig,
    )

    if time.time() > deadline:
        return {"kind": kind, "seed": seed, "skipped": True}
    data = _DATA
    x = data[kind]
    if kind == "latent":
        config = ClassifierConfig(LATENT, x["train"].shape[1], arch=GN_STATS, classes=3)
        budget = TrainConfig(epochs=epochs, seed=seed, flip=True, patience=patience)
    elif kind == "latent-resnet":  # the pixel baseline's network on the latent grid
        config = ClassifierConfig(LATENT, x["train"].shape[1], width=32, arch=RESNET, classes=3)
        budget = TrainConfig(epochs=epochs, seed=seed, flip=True, shift=2, patience=patience)
    else:  # pixel, pixel-decoded
        config = ClassifierConfig(PIXEL, 1, width=32, arch=RESNET, classes=3)
        budget = TrainConfig(epochs=epochs, seed=seed, flip=True, shift=8, patience=patience)
    points = []
    eval_seconds = [0.0]

    def accuracies(epoch: int, model) -> dict:
        began = time.perf_counter()
        point = {"epoch": epoch,
                 "test_accuracy": float((predict(model, x["test"]) == data["y"]["test"]).mean()),
                 "b_accuracy": float((predict(model, x["b"]) == data["y"]["b"]).mean())}
        eval_seconds[0] += time.perf_counter() - began
        return point

    def on_epoch(epoch, _model, best):
        if epoch in checkpoints:
            points.append(accuracies(epoch, best))

    start = time.perf_counter()
    model, history = train_classifier(config, x["train"], data["y"]["train"], x["val"],
                                      data["y"]["val"], budget, progress=False,
                                      on_epoch=on_epoch)
    seconds = time.perf_counter() - start
    ran = len(history)
    late = [c for c in checkpoints if c > ran]
    if late:  # stopped early: later budgets keep the same model
        kept = accuracies(ran, model)
        points += [{**kept, "epoch": c, "stopped_at": ran} for c in late]
    return {"kind": kind, "seed": seed, "params": model.parameter_count(), "points": points,
            "best_val": max(h["val_accuracy"] for h in history),
            "best_epoch": 1 + int(np.argmax([h["val_accuracy"] for h in history])),
            "epochs_run": ran, "seconds": seconds,
            "seconds_per_epoch": (seconds - eval_seconds[0]) / ran,
            "checkpoint_eval_seconds": eval_seconds[0], "model": model}


def speed(models: dict, streams: list[bytes], originals: np.ndarray, size: int) -> dict:
    """ms per image from a bitstream to a label, one image at a time, one torch thread."""
    from fedcodec.shared.analysis.image_input import resize_longer_side
    from fedcodec.shared.analysis.latents import latent_extractor
    from fedcodec.shared.codecs.base import get_codec

    torch.set_num_threads(1)
    extractor = latent_extractor(CODEC)
    pixel_model = models["pixel"]
    rows = {}

    def timed(name, decode_and_classify, inputs):
        with torch.no_grad():
            decode_and_classify(inputs[0])  # warm-up
            start = time.perf_counter()
            for item in inputs:
                decode_and_classify(item)
        rows[name] = (time.perf_counter() - start) * 1000.0 / len(inputs)

    def latent_path(stream, model):
        y = extractor.latents(stream).astype(np.float32)
        return model(torch.from_numpy(y)[None]).argmax(1)

    def pixel_label(image):
        small = resize_longer_side(np.asarray(image, dtype=np.uint8), size)
        return pixel_model(torch.from_numpy(small)[None, None]).argmax(1)

    for kind, label in (("latent", "gn-stats"), ("latent-resnet", "latent ResNet")):
        if kind in models:
            timed(f"latent: entropy decode + {label}",
                  lambda s, m=models[kind]: latent_path(s, m), streams)
    sizes = {}
    for spec in ("jpegls", "htj2k"):
        codec = get_codec(spec)
        coded = [codec.encode(np.ascontiguousarray(o), 8) for o in originals]
        sizes[spec] = 8.0 * sum(map(len, coded)) / (len(coded) * originals[0].size)
        timed(f"{spec} lossless decode + resize + ResNet",
              lambda s, c=codec: pixel_label(c.decode(s)), coded)
    timed("neural-lossy decode + resize + ResNet",
          lambda s: pixel_label(extractor.decode(s)), streams[: max(4, len(streams) // 4)])
    timed("ResNet alone (resize + classify, pixels in memory)", pixel_label, list(originals))
    sizes[CODEC] = 8.0 * sum(map(len, streams)) / (len(streams) * originals[0].size)
    return {"ms_per_image": rows, "bits_per_pixel": sizes, "images": len(streams)}


def cli_protocol(a_root: Path, b_root: Path, out: Path, cache: Path) -> dict:
    """`fedcodec analyze train --data A` then `analyze eval --data B`, as a user runs them."""
    exe = Path(sys.executable).with_name("fedcodec")
    model = out / "cli-model"
    common = ["--cache-dir", str(cache), "--quiet", "--limit", "3"]
    train = subprocess.run([str(exe), "analyze", "train", "--data", str(a_root), "--out",
                            str(model), "--epochs", "2", *common],
                           capture_output=True, text=True, check=False)
    evaluate = subprocess.run([str(exe), "analyze", "eval", "--model", str(model), "--data",
                               str(b_root), *common], capture_output=True, text=True, check=False)
    return {"train_exit": train.returncode, "train_output": train.stdout + train.stderr,
            "eval_exit": evaluate.returncode, "eval_output": evaluate.stdout + evaluate.stderr}


def full_estimate(curves: list[dict], sizes: dict, args: argparse.Namespace) -> dict:
    """Training time of the full protocol (every slice of the shared set, ``--epochs`` without
    early stopping, 3 seeds, one process), from this run's measured seconds per epoch scaled by
    the number of training slices (a forward/backward pass costs the same per slice)."""
    counts = [len(list((DATA / folder).glob("*.jpg"))) for folder in NAMES]
    full_train = sum(round(0.7 * round(0.8 * n)) for n in counts)
    estimate = {"full_train_slices": full_train, "epochs": args.epochs, "seeds": 3,
                "pixel_size": args.pixel_size}
    for kind in KINDS:
        per_epoch = [c["seconds_per_epoch"] for c in curves if c["kind"] == kind]
        if per_epoch:
            seconds = float(np.mean(per_epoch)) * full_train / sizes["train"]
            estimate[kind] = {"seconds_per_epoch": seconds,
                              "minutes_total": seconds * args.epochs * 3 / 60}
    return estimate


def summarise(curves: list[dict]) -> dict:
    """mean and std over seeds per (kind, epoch)."""
    table: dict = {}
    for run in curves:
        for p in run["points"]:
            cell = table.setdefault(run["kind"], {}).setdefault(p["epoch"], {"test": [], "b": []})
            cell["test"].append(p["test_accuracy"])
            cell["b"].append(p["b_accuracy"])
    return {kind: {str(e): {k: [float(np.mean(v)), float(np.std(v)), len(v)]
                            for k, v in cell.items()} for e, cell in sorted(per.items())}
            for kind, per in table.items()}


def plot(summary: dict, path: Path, pixel_size: int, patience: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    styles = {"latent": "tab:blue", "latent-resnet": "tab:green", "pixel": "tab:orange",
              "pixel-decoded": "tab:red"}
    labels = {"latent": "latent gn-stats (bitstream)",
              "latent-resnet": "latent ResNet (bitstream, aug.)",
              "pixel": f"pixel ResNet ({pixel_size}², aug.)",
              "pixel-decoded": f"pixel ResNet on neural-lossy decodes ({pixel_size}²)"}
    for kind, per in summary.items():
        epochs = [int(e) for e in per]
        for part, line in (("test", "-"), ("b", "--")):
            mean = np.array([per[str(e)][part][0] for e in epochs])
            std = np.array([per[str(e)][part][1] for e in epochs])
            ax.errorbar(epochs, mean, yerr=std, fmt=line + "o", color=styles[kind], capsize=3,
                        label=f"{labels[kind]}, "
                              f"{'A test' if part == 'test' else 'B (other patients)'}")
    ax.set_xscale("log", base=2)
    ticks = sorted({int(e) for per in summary.values() for e in per})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    stopping = f"; early stopping, patience {patience}" if patience else ""
    ax.set_xlabel(f"epoch budget (checkpoints of one run per seed{stopping})")
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(r: dict) -> str:
    lines = [
        f"Data: A = {r['sizes']['A']} slices (train {r['sizes']['train']}, "
        f"val {r['sizes']['val']}, "
        f"test {r['sizes']['test']}), B = {r['sizes']['B']} slices; seeds {r['seeds']}; "
        f"{r['epochs']} epochs; pixel input {r['pixel_size']}²; codec {CODEC} "
        f"(model {r['codec_model'][:8]}); {r['minutes']:.0f} min on {r['machine']}.",
        "",
        "| classifier | params | epochs | A test accuracy | B accuracy (other patients) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, per in r["summary"].items():
        for epoch, cell in per.items():
            t, b = cell["test"], cell["b"]
            lines.append(f"| {kind} | {r['params'][kind]:,} | {epoch} | {t[0]:.3f} ± {t[1]:.3f} "
                         f"(n={t[2]}) | {b[0]:.3f} ± {b[1]:.3f} |")
    if r.get("skipped"):
        lines += ["", f"Skipped (time cap): {', '.join(r['skipped'])}."]
    if r.get("curves"):
        lines += ["", f"Runs (early stopping, patience {r.get('patience')}; {r.get('jobs')} "
                  "training processes at once):", "",
                  "| classifier | seed | epochs run | best val. epoch | best val. | s/epoch | s |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {c['kind']} | {c['seed']} | {c.get('epochs_run', '')} | "
                  f"{c.get('best_epoch', '')} | {c['best_val']:.3f} | "
                  f"{c.get('seconds_per_epoch', 0):.1f} | {c['seconds']:.0f} |"
                  for c in r["curves"]]
    prof = r.get("profile") or {}
    if prof:
        lines += ["", "Where the time went (s): " + ", ".join(
            f"{k.replace('_seconds', '')} {v:.0f}" for k, v in prof.items()
            if k.endswith("_seconds"))]
        full = prof.get("full_protocol_estimate") or {}
        if "pixel" in full:
            lines += ["", f"Full protocol estimate ({full['full_train_slices']} training slices, "
                      f"{full['epochs']} epochs without early stopping, 3 seeds, one process, "
                      f"pixels at {full['pixel_size']}²): " + ", ".join(
                          f"{k} {full[k]['seconds_per_epoch']:.0f} s/epoch, "
                          f"{full[k]['minutes_total']:.0f} min" for k in KINDS
                          if k in full) + "."]
    if "speed" in r:
        s = r["speed"]
        lines += ["", f"Speed, bitstream to label ({s['images']} A-test images, one at a time, "
                  "1 torch thread, machine shared):", "", "| path | ms/image |", "| --- | ---: |"]
        lines += [f"| {k} | {v:.1f} |" for k, v in s["ms_per_image"].items()]
        lines += ["", "bits/pixel: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                 s["bits_per_pixel"].items())]
    if "cli" in r:
        c = r["cli"]
        lines += ["", f"CLI protocol: `analyze train --data A` exit {c['train_exit']}, "
                  f"`analyze eval --data B` exit {c['eval_exit']}:", "", "```",
                  c["train_output"].strip(), c["eval_output"].strip(), "```"]
    return "\n".join(lines) + "\n"


def merge_reports(paths: list[Path], out: Path) -> int:
    """One report (results.json, markdown, curves) from runs of different ``--kinds``."""
    runs = [json.loads(p.read_text()) for p in paths]
    same = ("sizes", "epochs", "pixel_size", "codec_model", "class_names", "patience")
    for run, path in zip(runs[1:], paths[1:], strict=True):
        differing = [k for k in same if run.get(k) != runs[0].get(k)]
        if differing:
            raise SystemExit(f"{path}: not the same protocol as {paths[0]} "
                             f"({', '.join(differing)})")
    merged = dict(runs[0])
    merged["curves"] = sorted((c for r in runs for c in r["curves"]),
                              key=lambda c: (KINDS.index(c["kind"]), c["seed"]))
    if len({(c["kind"], c["seed"]) for c in merged["curves"]}) != len(merged["curves"]):
        raise SystemExit("two of the merged runs trained the same (kind, seed)")
    merged["seeds"] = sorted({seed for r in runs for seed in r["seeds"]})  # n per row in the table
    merged["summary"] = summarise(merged["curves"])
    merged["params"] = {c["kind"]: c["params"] for c in merged["curves"]}
    merged["skipped"] = [s for r in runs for s in r.get("skipped", [])]
    merged["minutes"] = sum(r["minutes"] for r in runs)
    merged["command"] = " + ".join(r["command"] for r in runs)
    merged["merged_from"] = [str(p) for p in paths]
    speeds = [r["speed"] for r in runs if "speed" in r]
    if speeds:
        merged["speed"] = speeds[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(merged, indent=1))
    plot(merged["summary"], out / "budget_curves.png", merged["pixel_size"],
         merged.get("patience", 0))
    (out / "analysis_budget.md").write_text(markdown(merged))
    print(markdown(merged))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fedcodec-analysis-cache"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=64)
    parser.add_argument("--per-class-a", type=int, default=0, help="0: all of A")
    parser.add_argument("--per-class-b", type=int, default=0, help="0: all of B")
    parser.add_argument("--pixel-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timing-images", type=int, default=24)
    parser.add_argument("--max-minutes", type=float, default=40.0)
    parser.add_argument("--patience", type=int, default=16,
                        help="early stopping: epochs without a better validation accuracy (0: off)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="training processes at once (1 torch thread each)")
    parser.add_argument("--kinds", type=lambda v: v.split(","), default=list(DEFAULT_KINDS),
                        help="classifiers to train, comma-separated: " + ",".join(KINDS))
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="RESULTS",
                        help="no training: one report from the results.json of runs that each "
                        "trained some --kinds on the same data, split, seeds and epochs (every "
                        "(kind, seed) run is independent and deterministic, so this equals one "
                        "run of all of them)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run that checks the script: 8+4 slices per class, 2 epochs")
    args = parser.parse_args(argv)
    if args.merge:
        return merge_reports(args.merge, args.out)
    if args.quick:
        args.per_class_a, args.per_class_b, args.epochs, args.seeds = 12, 4, 2, [0]
        args.timing_images = 2
    checkpoints = tuple(e for e in CHECKPOINTS if e <= args.epochs) or (args.epochs,)
    if args.epochs not in checkpoints:
        checkpoints += (args.epochs,)
    from fedcodec.client.analysis.coding import CodedImages
    from fedcodec.client.analysis.coding_cache import code_images_cached
    from fedcodec.shared.analysis.dataset import LabelledImage, list_dataset, split_dataset
    from fedcodec.shared.analysis.image_input import InputPolicy
    from fedcodec.shared.analysis.latents import latent_extractor

    start = time.perf_counter()
    profile: dict = {}
    args.out.mkdir(parents=True, exist_ok=True)
    a_root, b_root = build_protocol(args.out / "data", 0.8, args.per_class_a, args.per_class_b)
    split = split_dataset(a_root, seed=20261125)
    b_set = list_dataset(b_root, split.class_names)
    parts = {"train": split.train, "val": split.val, "test": split.test, "b": b_set.images}
    roots = {"train": a_root, "val": a_root, "test": a_root, "b": b_root}
    # one coding pass over every part (one worker start-up), names relative to the data folder
    data_root = args.out / "data"
    prefixed = [LabelledImage(f"{roots[p].name}/{i.name}", i.label) for p in parts
                for i in parts[p]]
    everything = code_images_cached(data_root, prefixed, CODEC, args.cache, policy=InputPolicy(),
                                    workers=args.workers, description="coding A and B")
    coded, offset = {}, 0
    for p, imgs in parts.items():
        end = offset + len(imgs)
        coded[p] = CodedImages(everything.names[offset:end], everything.labels[offset:end],
                               everything.streams[offset:end], everything.latents[offset:end])
        offset = end
    profile["coding_seconds"] = time.perf_counter() - start
    print(f"coded in {profile['coding_seconds'] / 60:.1f} min", flush=True)
    began = time.perf_counter()
    latents = {p: c.latents for p, c in coded.items()}
    data = {"latent": latents, "latent-resnet": latents,
            "pixel": {p: pixels_at(roots[p], parts[p], args.pixel_size) for p in parts},
            "y": {p: c.labels for p, c in coded.items()}}
    if "pixel-decoded" in args.kinds:
        data["pixel-decoded"] = decoded_pixels(coded, args.pixel_size, args.workers,
                                               args.out / f"decoded_{args.pixel_size}.npz")
    profile["pixel_loading_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    torch.set_num_threads(1)
    identity = latent_extractor(CODEC).identity()
    result = {
        "seeds": args.seeds, "epochs": args.epochs, "checkpoints": list(checkpoints),
        "pixel_size": args.pixel_size, "codec_model": identity.get("model_hash") or "",
        "class_names": list(split.class_names),
        "sizes": {"A": len(split.train) + len(split.val) + len(split.test),
                  "train": len(split.train), "val": len(split.val), "test": len(split.test),
                  "B": len(b_set.images)},
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, {platform.processor() or 'cpu'}",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "patience": args.patience, "jobs": args.jobs,
        "cli": cli_protocol(a_root, b_root, args.out, args.cache),
    }
    curves, skipped, models = [], [], {}
    profile["cli_seconds"] = time.perf_counter() - began
    result["profile"] = profile

    def save() -> None:  # after every step: a capped or interrupted run still leaves its results
        result.update(curves=curves, summary=summarise(curves), skipped=skipped,
                      params={c["kind"]: c["params"] for c in curves},
                      minutes=(time.perf_counter() - start) / 60)
        (args.out / "results.json").write_text(json.dumps(result, indent=1))
        if result["summary"]:
            plot(result["summary"], args.out / "budget_curves.png", args.pixel_size,
                 args.patience)
        (args.out / "analysis_budget.md").write_text(markdown(result))

    # every (kind, seed) run is independent: a pool of --jobs forked processes (1 torch thread
    # each) shares the loaded arrays copy-on-write. Longest first (KINDS order), so that no
    # process starts a long run while the other is nearly done
    _DATA.update(data)
    deadline = time.time() + args.max_minutes * 60 - (time.perf_counter() - start)
    tasks = [(kind, seed) for kind in KINDS if kind in args.kinds for seed in args.seeds]
    began = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(train_curve, kind, seed, args.epochs, checkpoints,
                               args.patience, deadline) for kind, seed in tasks]
        for future in as_completed(futures):
            run = future.result()
            if run.get("skipped"):
                skipped.append(f"{run['kind']} seed {run['seed']}")
                continue
            models.setdefault(run["kind"], run["model"])
            curves.append({k: v for k, v in run.items() if k != "model"})
            print(f"{run['kind']} seed {run['seed']}: {run['points'][-1]} "
                  f"({run['epochs_run']} epochs, {run['seconds']:.0f} s)", flush=True)
            save()
    profile["training_wall_seconds"] = time.perf_counter() - began
    curves.sort(key=lambda c: (KINDS.index(c["kind"]), c["seed"]))
    if "pixel" in models and set(models) & {"latent", "latent-resnet"}:
        n = args.timing_images
        from fedcodec.shared.analysis.dataset import load_image

        began = time.perf_counter()
        originals = np.stack([load_image(a_root, i, InputPolicy()) for i in split.test[:n]])
        result["speed"] = speed(models, coded["test"].streams[:n], originals, args.pixel_size)
        profile["speed_seconds"] = time.perf_counter() - began
    profile["full_protocol_estimate"] = full_estimate(curves, result["sizes"], args)
    save()
    print(markdown(result))
    return 0 if result["cli"]["train_exit"] == 0 and result["cli"]["eval_exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
