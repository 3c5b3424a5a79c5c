"""Compressed-domain analysis on the tumour slices: latent vs pixel vs decoded-image classifiers
(several seeds, full split), and encrypted (CKKS) heads on pooled latents against their plaintext
twins.

Run (heavy: coding ~0.4 s per slice, the pixel CNN ~20 min per seed on the shared 2 cores; run E
in docs/compressed-domain-analysis.md spread the seeds over processes with ``--train-only``)::

    nice -n 10 .venv/bin/python experiments/analysis_tumour.py --out /tmp/fedcodec-analysis

It writes ``OUT/results.json``, ``OUT/analysis_tumour.md`` (the tables for
docs/compressed-domain-analysis.md), confusion-matrix PNGs, the split file ``OUT/split.json``,
and the model folder (``OUT/model``: what ``fedcodec-server analysis --model`` serves).

Coding: every slice goes through the real codec path once (encode -> entropy-decode the stream
-> latents; decode the stream -> pixels), in ``--workers`` processes, cached per slice under
``--cache`` (default ``/tmp/fedcodec-analysis-cache``), so re-runs skip the codec. Each
(classifier path, seed) run is saved under ``OUT/runs/`` and skipped when present, so the
expensive runs can be spread over processes (``--paths pixel --seeds 1``) and a last call
aggregates them.

Paths (``--paths``): ``latent-<arch>`` (entropy-decoded latents; arch trunk, gn-stats or
stats-mlp, see shared/analysis/classifier.py), ``pixel`` (original pixels), ``decoded``
(decoded pixels, a classifier trained on decoded images). Every path gets the same training
budget (:class:`TrainConfig`: epochs, batch, optimiser, schedule, seed); the pixel and decoded
paths and ``latent-trunk`` share one trunk and differ only in the stem. The model folder gets
the latent path with the best mean *validation* accuracy. Caveat: patient IDs are unknown in
this copy of the data, so slices of one patient can be on both sides of the split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import imagecodecs
import numpy as np
import torch

from fedcodec.client.analysis.coding import CodedImages
from fedcodec.client.analysis.coding_cache import code_images_cached
from fedcodec.client.analysis.model_files import CLASSIFIER_FILE, SPLIT_FILE, save_classifier
from fedcodec.client.analysis.pipeline import limit_per_class
from fedcodec.client.analysis.remote import AnalysisClient, EncryptedClassifier
from fedcodec.client.analysis.training import (
    HeadBudget,
    TrainConfig,
    fit_head,
    predict,
    train_classifier,
)
from fedcodec.server import pki
from fedcodec.server.analysis.listener import start_analysis_server
from fedcodec.server.analysis.service import AnalysisService
from fedcodec.shared.analysis.ckks import (
    decrypt_batch,
    encrypt_batch,
    load_public_context,
    new_site_context,
    public_context_bytes,
)
from fedcodec.shared.analysis.classifier import (
    ARCHS,
    DEFAULT_LATENT_ARCH,
    LATENT,
    PIXEL,
    TRUNK,
    ClassifierConfig,
    build_classifier,
)
from fedcodec.shared.analysis.dataset import (
    CLASS_NAMES,
    list_labelled_images,
    load_image,
    load_split,
    make_split,
    save_split,
)
from fedcodec.shared.analysis.heads import HEAD_KINDS, LINEAR, head_path
from fedcodec.shared.analysis.latents import DEFAULT_LATENT_CODEC, latent_extractor
from fedcodec.shared.analysis.metrics import classification_report, save_confusion_png
from fedcodec.shared.analysis.pooling import CHANNEL_MEAN_ABSMEAN, pool_latents
from fedcodec.shared.analysis.wire import AnalysisLimits

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tumor"
DEFAULT_CACHE = Path("/tmp/fedcodec-analysis-cache")
LATENT_PATHS = tuple(f"latent-{arch}" for arch in ARCHS)
PATHS = (*LATENT_PATHS, "pixel", "decoded")


def timed_ms(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) * 1000.0 / max(1, len(items))


def bitstream_to_label_ms(models, extractor, test: CodedImages, names, count: int) -> dict:
    """ms per image, one image at a time, from the stored bytes to the class index."""
    torch.set_num_threads(1)  # one image at a time, one thread: stable under load
    streams = test.streams[:count]
    jpegs = [(DATA / n).read_bytes() for n in names[:count]]
    latent_model, pixel_model, decoded_model = models

    @torch.no_grad()
    def latent_path(stream: bytes) -> int:
        y = torch.from_numpy(extractor.latents(stream).astype(np.float32))[None]
        return int(latent_model(y).argmax())

    @torch.no_grad()
    def decoded_path(stream: bytes) -> int:
        x = torch.from_numpy(np.asarray(extractor.decode(stream)).astype(np.float32))[None, None]
        return int(decoded_model(x).argmax())

    @torch.no_grad()
    def pixel_path(jpeg: bytes) -> int:
        x = torch.from_numpy(imagecodecs.jpeg8_decode(jpeg).astype(np.float32))[None, None]
        return int(pixel_model(x).argmax())

    @torch.no_grad()
    def entropy_decode_only(stream: bytes) -> None:
        extractor.latents(stream)

    @torch.no_grad()
    def decode_only(stream: bytes) -> None:
        extractor.decode(stream)

    latent_path(streams[0]), decoded_path(streams[0]), pixel_path(jpegs[0])  # warm-up
    return {
        "latent": timed_ms(latent_path, streams),
        "decoded": timed_ms(decoded_path, streams),
        "pixel_from_jpeg": timed_ms(pixel_path, jpegs),
        "entropy_decode_only": timed_ms(entropy_decode_only, streams),
        "full_decode_only": timed_ms(decode_only, streams),
        "images": len(streams),
    }


def encrypted_run(model_dir: Path, features: np.ndarray, labels: np.ndarray, work: Path) -> dict:
    """Both heads through the real service (mutual TLS, in-process), vs plaintext."""
    pki.init_ca(work / "ca")
    pki.issue_server(work / "ca", work / "server")
    pki.issue_site(work / "ca", work / "site", "site-a")
    limits = AnalysisLimits()
    service = AnalysisService.from_model_dir(model_dir, limits)
    running = start_analysis_server(service, work / "server")
    results = {}
    try:
        for kind in HEAD_KINDS:
            head = service.heads[kind]
            plain = head.plain_scores(features)
            address = f"127.0.0.1:{running.port}"
            with AnalysisClient(address, work / "site", limits=limits) as client:
                start = time.perf_counter()
                session = EncryptedClassifier(client, kind, pinned_model_hash=head.model_hash())
                setup_ms = (time.perf_counter() - start) * 1000.0
                start = time.perf_counter()
                scores = session.scores(features)
                wall_ms = (time.perf_counter() - start) * 1000.0
            st = session.stats
            n = len(features)
            results[kind] = {
                "profile": head.profile.describe(),
                "studies": n,
                "slots_used": st.batches,
                "agreement": float((scores.argmax(1) == plain.argmax(1)).mean()),
                "encrypted_accuracy": float((scores.argmax(1) == labels).mean()),
                "max_abs_score_error": float(np.abs(scores - plain).max()),
                "server_evaluate_ms_per_study": st.server_evaluate_ms / n,
                "encrypt_ms_per_study": st.encrypt_ms / n,
                "decrypt_ms_per_study": st.decrypt_ms / n,
                "wall_ms_per_study": wall_ms / n,
                "setup_ms": setup_ms,
                "bytes_sent_per_study": st.bytes_sent / n,
                "bytes_received_per_study": st.bytes_received / n,
                "context_bytes_once": st.context_bytes,
            }
        results["linear_full_batch"] = full_batch_cost(service.heads[LINEAR], features)
        results["linear_profiles"] = compare_linear_profiles(service.heads[LINEAR], features)
    finally:
        running.stop(grace=1.0)
    return results


def full_batch_cost(head, features: np.ndarray) -> dict:
    """The linear head on full packed ciphertexts (4 x S studies): the amortised cost per study."""
    context = new_site_context(head.profile)
    server = load_public_context(public_context_bytes(context, head.feature_count),
                                 head.profile)
    slots = 4 * head.studies_per_ciphertext
    batch = np.resize(features, (slots, features.shape[1]))
    blob = encrypt_batch(context, batch)
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        head.evaluate_bytes(server, blob)
        runs.append((time.perf_counter() - start) * 1000.0)
    return {"slots": slots, "evaluate_ms": min(runs), "ms_per_study": min(runs) / slots,
            "bytes_per_study": len(blob) / slots}


def compare_linear_profiles(head, features: np.ndarray) -> list[dict]:
    """The head's packed profile on the test batch (the one-feature-per-ciphertext profiles
    linear-4096 / 8192 it replaced are compared in docs/compressed-domain-analysis.md, run F)."""
    rows = []
    for profile in (head.profile,):
        context = new_site_context(profile)
        server = load_public_context(public_context_bytes(context, head.feature_count), profile)
        blob = encrypt_batch(context, features)
        runs, out = [], b""
        for _ in range(3):
            start = time.perf_counter()
            out = head.evaluate_bytes(server, blob)
            runs.append((time.perf_counter() - start) * 1000.0)
        scores = decrypt_batch(context, out, len(features), head.classes)
        rows.append({"profile": profile.describe(), "evaluate_ms": min(runs),
                     "ms_per_study": min(runs) / len(features), "request_bytes": len(blob),
                     "max_abs_error": float(np.abs(scores - head.plain_scores(features)).max())})
    return rows




def path_config(path: str, latent_channels: int) -> ClassifierConfig:
    """The classifier one path trains."""
    if path in LATENT_PATHS:
        return ClassifierConfig(LATENT, latent_channels, arch=path.removeprefix("latent-"))
    if path in ("pixel", "decoded"):
        return ClassifierConfig(PIXEL, 1, arch=TRUNK)
    raise SystemExit(f"unknown path {path!r}; known: {', '.join(PATHS)}")


def path_inputs(path: str, part: CodedImages) -> np.ndarray:
    if path in LATENT_PATHS:
        return part.latents
    return part.pixels if path == "pixel" else part.decoded


def pixels_only(images) -> CodedImages:
    """Labels and original pixels, no coding (for a pixel-only training process)."""
    return CodedImages(
        names=[i.name for i in images],
        labels=np.array([i.label for i in images], dtype=np.int64),
        streams=[], latents=np.zeros((len(images), 1, 1, 1), np.float16),
        pixels=np.stack([load_image(DATA, i) for i in images]),
    )


def run_path(path: str, seed: int, coded: dict[str, CodedImages], budget: TrainConfig,
             runs: Path) -> dict:
    """Train one path with one seed (or load the saved run): test metrics + predictions."""
    record = runs / f"{path}-s{seed}.json"
    tr, va, te = coded["train"], coded["val"], coded["test"]
    key = hashlib.sha256(json.dumps([tr.names, va.names, te.names,
                                     asdict(replace(budget, seed=seed))]).encode()).hexdigest()
    if record.exists():
        saved = json.loads(record.read_text())
        legacy = ("run_key" not in saved and saved["budget"] == asdict(replace(budget, seed=seed))
                  and len(saved["predicted"]) == len(te.labels))
        if saved.get("run_key") != key and not legacy:
            raise SystemExit(f"{record} was trained on other images or another budget; "
                             "use a fresh --out")
        return saved
    config = path_config(path, tr.latents.shape[1])
    start = time.perf_counter()
    model, history = train_classifier(config, path_inputs(path, tr), tr.labels,
                                      path_inputs(path, va), va.labels,
                                      replace(budget, seed=seed), description=f"{path} s{seed}")
    seconds = time.perf_counter() - start
    predicted = predict(model, path_inputs(path, te))
    report = classification_report(te.labels, predicted, len(CLASS_NAMES))
    result = {
        "path": path, "seed": seed, **report.to_json(), "params": model.parameter_count(),
        "train_seconds": seconds, "best_val_accuracy": max(h["val_accuracy"] for h in history),
        "history": history, "predicted": predicted.tolist(), "config": config.to_json(),
        "budget": asdict(replace(budget, seed=seed)), "run_key": key,
    }
    runs.mkdir(parents=True, exist_ok=True)
    torch.save({"config": config.to_json(), "state": model.state_dict()},
               runs / f"{path}-s{seed}.pt")
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, record)
    print(f"{path} seed {seed}: test accuracy {report.accuracy:.4f}, macro-F1 "
          f"{report.macro_f1:.4f}, val {result['best_val_accuracy']:.4f}, {seconds:.0f} s",
          flush=True)
    return result


def decoded_by_pixel(runs: Path, seed: int, test: CodedImages, pixel_run: dict) -> dict:
    """Decode-then-classify without a decoded-image training set: the pixel classifier of
    ``seed`` on the codec's decoded test images (no training; its train time is the pixel's)."""
    predicted = predict(load_run_model(runs, "pixel", seed), test.decoded)
    report = classification_report(test.labels, predicted, len(CLASS_NAMES))
    return {"path": "decoded-by-pixel", "seed": seed, **report.to_json(),
            "params": pixel_run["params"], "train_seconds": pixel_run["train_seconds"],
            "best_val_accuracy": pixel_run["best_val_accuracy"], "predicted": predicted.tolist()}


def load_run_model(runs: Path, path: str, seed: int):
    payload = torch.load(runs / f"{path}-s{seed}.pt", map_location="cpu", weights_only=True)
    model = build_classifier(ClassifierConfig(**payload["config"]))
    model.load_state_dict(payload["state"])
    return model.eval()


def summarise(results: list[dict], labels: np.ndarray) -> dict:
    """Mean and sample std over seeds; confusion summed over seeds."""
    acc = np.array([r["accuracy"] for r in results])
    f1 = np.array([r["macro_f1"] for r in results])
    val = np.array([r["best_val_accuracy"] for r in results])
    confusion = np.sum([np.array(r["confusion"]) for r in results], axis=0)
    std = (lambda a: float(a.std(ddof=1)) if len(a) > 1 else 0.0)
    return {
        "seeds": [r["seed"] for r in results], "accuracy": acc.tolist(),
        "accuracy_mean": float(acc.mean()), "accuracy_std": std(acc),
        "macro_f1_mean": float(f1.mean()), "macro_f1_std": std(f1),
        "val_accuracy_mean": float(val.mean()), "confusion_summed": confusion.tolist(),
        "params": results[0]["params"],
        "train_seconds_mean": float(np.mean([r["train_seconds"] for r in results])),
        "test_images": len(labels),
    }


def markdown(r: dict) -> str:
    b = r["budget"]
    lines = [
        (f"Test {r['test_images']} slices, train {r['train_images']}, val {r['val_images']} "
        f"(limits per class: {r.get('limits_per_class', {})}; split seed {r['split_seed']}, "
        f"sha256 {r['split_sha256'][:12]}). "
        f"Codec `{r['codec']}` at {r['test_bpp']:.3f} bpp (model {r['codec_model'][:12]}). "
        f"Budget per classifier and seed: {b['epochs']} epochs, batch {b['batch_size']}, AdamW "
        f"lr {b['learning_rate']}, one-cycle; seeds {', '.join(map(str, r['seeds']))}; "
        f"mean ± std over seeds."),
        "",
        ("| path | input | params | accuracy | macro-F1 | val. acc. | train s/seed | "
        "ms/image bitstream to label |"),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    what = {"pixel": "original 8-bit pixels", "decoded": "neural-lossy decoded pixels",
            "decoded-by-pixel": "decoded pixels, the pixel classifier (trained on originals)"}
    timing = r.get("timing_ms", {})
    for path, s in r["classifiers"].items():
        timed = {"pixel": "pixel_from_jpeg", "decoded": "decoded", "decoded-by-pixel": "decoded",
                 r.get("timed_latent_path"): "latent"}
        ms = timing.get(timed.get(path, ""))
        shown = f"{ms:.1f}" if ms is not None else "-"
        lines.append(
            f"| {path} | {what.get(path, 'entropy-decoded y_hat')} | {s['params']:,} | "
            f"{s['accuracy_mean']:.4f} ± {s['accuracy_std']:.4f} | "
            f"{s['macro_f1_mean']:.4f} ± {s['macro_f1_std']:.4f} | {s['val_accuracy_mean']:.4f} | "
            f"{s['train_seconds_mean']:.0f} | {shown} |"
        )
    if timing:
        lines += [
            "",
            (f"Timed latent path: `{r.get('timed_latent_path')}`. Entropy decoding alone: "
            f"{timing['entropy_decode_only']:.1f} ms/image; full decode alone "
            f"{timing['full_decode_only']:.1f} ms/image (mean of {timing['images']} test images, "
            "one at a time, 1 torch thread, machine shared with other jobs). Latent path "
            f"speed-up over decode-then-classify: {timing['decoded'] / timing['latent']:.1f}x."),
        ]
    if "encrypted" in r:
        lines += encrypted_markdown(r)
    return "\n".join(lines) + "\n"


def encrypted_markdown(r: dict) -> list[str]:
    lines = [
        "",
        ("| head (pooled latents) | CKKS profile | plaintext acc. | encrypted acc. | agreement | "
        "max abs. score error | server ms/study | encrypt ms/study | bytes sent/study | "
        "bytes back/study |"),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in HEAD_KINDS:
        e, p = r["encrypted"][kind], r["heads"][kind]
        lines.append(
            f"| {kind} | {e['profile']} | {p['plain_accuracy']:.4f} | "
            f"{p['encrypted_accuracy']:.4f} "
            f"| {e['agreement'] * 100:.2f}% | {e['max_abs_score_error']:.2e} | "
            f"{e['server_evaluate_ms_per_study']:.3f} | {e['encrypt_ms_per_study']:.3f} | "
            f"{e['bytes_sent_per_study']:,.0f} | {e['bytes_received_per_study']:,.0f} |"
        )
    fb = r["encrypted"]["linear_full_batch"]
    lines += [
        "",
        (f"Linear head on {fb['slots']} studies (full packed ciphertexts): "
         f"{fb['evaluate_ms']:.0f} ms, "
        f"{fb['ms_per_study']:.3f} ms and {fb['bytes_per_study']:,.0f} request bytes per study. "
        f"Public context (sent once per session): {r['encrypted'][LINEAR]['context_bytes_once']:,} "
        f"bytes (linear), {r['encrypted']['poly-mlp']['context_bytes_once']:,} bytes (poly-mlp)."),
        "",
        ("| linear head, same test batch | evaluate ms | ms/study | request bytes | "
        "max abs. error |"),
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in r["encrypted"].get("linear_profiles", []):
        lines.append(f"| {row['profile']} | {row['evaluate_ms']:.0f} | {row['ms_per_study']:.3f} | "
                     f"{row['request_bytes']:,} | {row['max_abs_error']:.1e} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedcodec-analysis"))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="per-slice codec cache (streams, latents, decodes)")
    parser.add_argument("--workers", type=int, default=2, help="coding processes")
    parser.add_argument("--codec", default=DEFAULT_LATENT_CODEC)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--paths", default=f"latent-{DEFAULT_LATENT_ARCH},pixel,decoded",
                        help=f"comma-separated, from {', '.join(PATHS)}")
    parser.add_argument("--limit", type=int, help="at most N images per class in train")
    parser.add_argument("--val-limit", type=int, help="at most N images per class in val")
    parser.add_argument("--test-limit", type=int, help="at most N images per class in test")
    parser.add_argument("--train-only", action="store_true",
                        help="only train the missing (path, seed) runs; no timing, heads, report")
    parser.add_argument("--timing-images", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20261125, help="split seed")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths = [p for p in args.paths.split(",") if p]
    for path in paths:
        path_config(path, 1)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    split_file = out / "split.json"
    if split_file.exists():
        split = load_split(split_file)
    else:
        split = make_split(list_labelled_images(DATA), seed=args.seed)
        save_split(split, split_file)
    model_dir = out / "model"
    save_split(split, model_dir / SPLIT_FILE)
    extractor = latent_extractor(args.codec)
    identity = extractor.identity()
    limits = {"train": args.limit, "val": args.val_limit, "test": args.test_limit}
    parts = {p: limit_per_class(split.part(p), limits[p]) for p in ("train", "val", "test")}
    decode_all = "decoded" in paths
    if args.train_only and paths == ["pixel"]:  # the pixel path alone needs no codec
        coded = {p: pixels_only(imgs) for p, imgs in parts.items()}
    else:
        coded = {
            p: code_images_cached(DATA, imgs, args.codec, args.cache, workers=args.workers,
                                  decode=(p == "test" and not args.train_only) or decode_all,
                                  keep_pixels="pixel" in paths, description=f"coding {p}")
            for p, imgs in parts.items()
        }
    tr, va, te = coded["train"], coded["val"], coded["test"]
    print(f"coded in {time.perf_counter() - t0:.0f} s; latents {tr.latents.shape[1:]}", flush=True)
    budget = replace(TrainConfig(), epochs=args.epochs)
    runs = out / "runs"
    per_path = {path: [run_path(path, seed, coded, budget, runs) for seed in seeds]
                for path in paths}
    if args.train_only:
        return 0
    if "pixel" in paths and "decoded" not in paths:  # decode, then the pixel classifier
        per_path["decoded-by-pixel"] = [
            decoded_by_pixel(runs, seed, te, per_path["pixel"][k])
            for k, seed in enumerate(seeds)
        ]
    classifiers = {path: summarise(results, te.labels) for path, results in per_path.items()}
    for path in classifiers:
        report = classification_report(te.labels, np.array(per_path[path][0]["predicted"]),
                                       len(CLASS_NAMES))
        save_confusion_png(report, CLASS_NAMES, f"{path} classifier (test, seed {seeds[0]})",
                           out / f"confusion-{path}.png")
    latent_paths = [p for p in paths if p in LATENT_PATHS]
    best = max(latent_paths, key=lambda p: classifiers[p]["val_accuracy_mean"]) if latent_paths \
        else None
    results: dict = {
        "codec": identity["spec"], "codec_model": str(identity.get("model_hash") or ""),
        "latent_shape": list(tr.latents.shape[1:]), "test_bpp": te.bits_per_pixel,
        "train_images": len(tr.labels), "val_images": len(va.labels),
        "test_images": len(te.labels), "split_seed": split.seed, "split_sha256": split.digest(),
        "budget": asdict(budget), "seeds": seeds, "classifiers": classifiers,
        "limits_per_class": {p: n for p, n in limits.items() if n is not None},
        "best_latent_path_by_val": best,
    }
    if best is not None:
        latent_model = load_run_model(runs, best, seeds[0])
        save_classifier(model_dir / CLASSIFIER_FILE, latent_model, {
            "latent": identity, "split_sha256": split.digest(),
            "budget": asdict(replace(budget, seed=seeds[0])),
            "history": per_path[best][0]["history"], "classes": list(CLASS_NAMES)})
        if "pixel" in paths:
            pixel_model = load_run_model(runs, "pixel", seeds[0])
            decoded_model = (load_run_model(runs, "decoded", seeds[0]) if "decoded" in paths
                             else pixel_model)
            models = (latent_model, pixel_model, decoded_model)
            results["timing_ms"] = bitstream_to_label_ms(
                models, extractor, te, [i.name for i in parts["test"]], args.timing_images)
            results["timed_latent_path"] = best
            print(f"timing: {results['timing_ms']}", flush=True)
    f_tr, f_va, f_te = (pool_latents(c.latents) for c in (tr, va, te))
    heads = {}
    for kind in HEAD_KINDS:
        head = fit_head(kind, f_tr, tr.labels, f_va, va.labels, class_names=CLASS_NAMES,
                        pooling=CHANNEL_MEAN_ABSMEAN, latent_codec=identity["spec"],
                        latent_model_hash=identity.get("model_hash") or "", budget=HeadBudget())
        head.save(head_path(model_dir, kind))
        predicted = head.plain_scores(f_te).argmax(1)
        heads[kind] = {"plain_accuracy": float((predicted == te.labels).mean())}
    with tempfile.TemporaryDirectory() as work:
        encrypted = encrypted_run(model_dir, f_te, te.labels, Path(work))
    for kind in HEAD_KINDS:
        heads[kind]["encrypted_accuracy"] = encrypted[kind]["encrypted_accuracy"]
    results.update({
        "heads": heads, "encrypted": encrypted, "seconds": time.perf_counter() - t0,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
    })
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "analysis_tumour.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
