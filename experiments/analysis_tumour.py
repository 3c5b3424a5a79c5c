"""Compressed-domain analysis on the tumour slices: latent vs pixel vs decoded-image classifiers,
and encrypted (CKKS) heads on pooled latents against their plaintext twins.

Run (heavy: ~15 min on 2 shared cores)::

    nice -n 10 .venv/bin/python experiments/analysis_tumour.py --out /tmp/fedcodec-analysis

It writes ``OUT/results.json``, ``OUT/analysis_tumour.md`` (the tables for
docs/compressed-domain-analysis.md), confusion-matrix PNGs, the split file, and the model folder
(``OUT/model``: what ``fedcodec-server analysis --model`` serves). Coded bitstreams and latents
are cached in ``OUT/cache`` so a re-run skips the codec.

Every path gets the same classifier budget (:class:`TrainConfig`): same trunk, epochs, batch,
optimiser, seed; only the stem that maps the input to the 1/16 grid differs. Caveat: patient IDs
are unknown in this copy of the data, so slices of one patient can be on both sides of the split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import imagecodecs
import numpy as np
import torch

from fedcodec.client.analysis.coding import CodedImages, code_images
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
    CkksProfile,
    decrypt_batch,
    encrypt_batch,
    load_public_context,
    new_site_context,
    public_context_bytes,
)
from fedcodec.shared.analysis.classifier import LATENT, PIXEL, ClassifierConfig
from fedcodec.shared.analysis.dataset import (
    CLASS_NAMES,
    list_labelled_images,
    make_split,
    save_split,
)
from fedcodec.shared.analysis.heads import HEAD_KINDS, LINEAR, head_path
from fedcodec.shared.analysis.latents import DEFAULT_LATENT_CODEC, latent_extractor
from fedcodec.shared.analysis.metrics import classification_report, save_confusion_png
from fedcodec.shared.analysis.pooling import CHANNEL_MEAN_ABSMEAN, pool_latents
from fedcodec.shared.analysis.wire import AnalysisLimits

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tumor"


def coded_part(out: Path, name: str, images, extractor, *, decode: bool) -> CodedImages:
    """Code one split part (or load it from the cache)."""
    identity = extractor.identity()
    spec_digest = hashlib.sha256(identity["spec"].encode()).hexdigest()[:12]
    key = f"{name}-{len(images)}-{spec_digest}-{identity.get('model_hash')}-{int(decode)}.pkl"
    cache = out / "cache" / key
    if cache.exists():
        with open(cache, "rb") as handle:
            return pickle.load(handle)
    coded = code_images(DATA, images, extractor, keep_pixels=True, decode=decode,
                        description=f"coding {name}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache, "wb") as handle:
        pickle.dump(coded, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return coded


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
    """The linear head on a full ciphertext (4096 slots): the amortised cost per study."""
    context = new_site_context(head.profile)
    server = load_public_context(public_context_bytes(context), head.profile)
    slots = head.profile.slots
    batch = np.resize(features, (slots, features.shape[1]))
    blob = encrypt_batch(context, batch)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        head.evaluate_bytes(server, blob)
        runs.append((time.perf_counter() - start) * 1000.0)
    return {"slots": slots, "evaluate_ms": min(runs), "ms_per_study": min(runs) / slots,
            "bytes_per_study": len(blob) / slots}


def compare_linear_profiles(head, features: np.ndarray) -> list[dict]:
    """Why linear-4096: the same head and batch under it and under N=8192 with 60/40/60."""
    rows = []
    alternative = CkksProfile("linear-8192 (alternative)", 8192, (60, 40, 60), 40, 1)
    for profile in (head.profile, alternative):
        context = new_site_context(profile)
        server = load_public_context(public_context_bytes(context), profile)
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


def markdown(r: dict) -> str:
    c = r["classifiers"]
    t = r["timing_ms"]
    lines = [
        f"Test set: {r['test_images']} slices (train {r['train_images']}, val {r['val_images']}; "
        f"split seed {r['split_seed']}, sha256 {r['split_sha256'][:12]}). Codec "
        f"`{r['codec']}` at {r['test_bpp']:.3f} bpp (model {r['codec_model'][:12]}). "
        f"Budget per classifier: {r['budget']['epochs']} epochs, "
        f"batch {r['budget']['batch_size']}, "
        f"AdamW lr {r['budget']['learning_rate']}, seed {r['budget']['seed']}.",
        "",
        "| path | input | params | accuracy | macro-F1 | ms/image bitstream to label |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    rows = [
        ("latent", "entropy-decoded y_hat " + "x".join(map(str, r["latent_shape"])), "latent"),
        ("pixel", "original 8-bit pixels (from the JPEG)", "pixel_from_jpeg"),
        ("decoded image", "neural-lossy decoded pixels" + (
            "" if r["decoded_train"] else " (pixel classifier, trained on originals)"), "decoded"),
    ]
    for name, what, timing in rows:
        key = name.split()[0]
        lines.append(
            f"| {name} | {what} | {c[key]['params']:,} | {c[key]['accuracy']:.4f} | "
            f"{c[key]['macro_f1']:.4f} | {t[timing]:.1f} |"
        )
    lines += [
        "",
        f"Entropy decoding alone: {t['entropy_decode_only']:.1f} ms/image; full decode alone "
        f"{t['full_decode_only']:.1f} ms/image (mean of {t['images']} test images, one at a time, "
        "1 torch thread, machine shared with other jobs). "
        f"Latent path speed-up over decode-then-classify: {t['decoded'] / t['latent']:.1f}x.",
        "",
        "| head (pooled latents) | CKKS profile | plaintext acc. | encrypted acc. | agreement | "
        "max abs. score error | server ms/study | encrypt ms/study | bytes sent/study | "
        "bytes back/study |",
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
        f"Linear head on a full ciphertext ({fb['slots']} slots): {fb['evaluate_ms']:.0f} ms, "
        f"{fb['ms_per_study']:.3f} ms and {fb['bytes_per_study']:,.0f} request bytes per study. "
        f"Public context (sent once per session): {r['encrypted'][LINEAR]['context_bytes_once']:,} "
        f"bytes (linear), {r['encrypted']['poly-mlp']['context_bytes_once']:,} bytes (poly-mlp).",
        "",
        "| linear head, same test batch | evaluate ms | ms/study | request bytes | "
        "max abs. error |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in r["encrypted"].get("linear_profiles", []):
        lines.append(f"| {row['profile']} | {row['evaluate_ms']:.0f} | {row['ms_per_study']:.3f} | "
                     f"{row['request_bytes']:,} | {row['max_abs_error']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedcodec-analysis"))
    parser.add_argument("--codec", default=DEFAULT_LATENT_CODEC)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--limit", type=int, help="at most N images per class in train")
    parser.add_argument("--val-limit", type=int, help="at most N images per class in val")
    parser.add_argument("--test-limit", type=int, help="at most N images per class in test")
    parser.add_argument(
        "--decoded-train", action="store_true",
        help="train the decoded-image classifier on decoded train/val images (costs a full "
        "decode of them); default: the pixel classifier is applied to decoded test images",
    )
    parser.add_argument("--timing-images", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    split = make_split(list_labelled_images(DATA), seed=args.seed)
    model_dir = out / "model"
    save_split(split, model_dir / SPLIT_FILE)
    extractor = latent_extractor(args.codec)
    identity = extractor.identity()
    limits = {"train": args.limit, "val": args.val_limit, "test": args.test_limit}
    parts = {p: limit_per_class(split.part(p), limits[p]) for p in ("train", "val", "test")}
    coded = {
        p: coded_part(out, p, imgs, extractor, decode=(p == "test" or args.decoded_train))
        for p, imgs in parts.items()
    }
    tr, va, te = coded["train"], coded["val"], coded["test"]
    print(f"coded in {time.perf_counter() - t0:.0f} s; latents {tr.latents.shape[1:]}", flush=True)
    budget = replace(TrainConfig(), epochs=args.epochs)
    inputs = {
        "latent": (LATENT, tr.latents, va.latents, te.latents),
        "pixel": (PIXEL, tr.pixels, va.pixels, te.pixels),
    }
    if args.decoded_train:
        inputs["decoded"] = (PIXEL, tr.decoded, va.decoded, te.decoded)
    models, classifiers = {}, {}
    for name, (kind, x_tr, x_va, x_te) in inputs.items():
        start = time.perf_counter()
        channels = x_tr.shape[1] if kind == LATENT else 1
        model, history = train_classifier(ClassifierConfig(kind, channels), x_tr, tr.labels,
                                          x_va, va.labels, budget, description=name)
        report = classification_report(te.labels, predict(model, x_te), len(CLASS_NAMES))
        save_confusion_png(report, CLASS_NAMES, f"{name} classifier (test)",
                           out / f"confusion-{name}.png")
        models[name] = model
        classifiers[name] = {**report.to_json(), "params": model.parameter_count(),
                             "train_seconds": time.perf_counter() - start, "history": history}
        print(f"{name}: test accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f}",
              flush=True)
    if not args.decoded_train:  # decode-then-classify with the pixel classifier
        report = classification_report(te.labels, predict(models["pixel"], te.decoded),
                                       len(CLASS_NAMES))
        save_confusion_png(report, CLASS_NAMES, "pixel classifier on decoded images (test)",
                           out / "confusion-decoded.png")
        models["decoded"] = models["pixel"]
        classifiers["decoded"] = {**report.to_json(), "params": models["pixel"].parameter_count(),
                                  "trained_on": "original pixels"}
        print(f"decoded: test accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f}",
              flush=True)
    save_classifier(model_dir / CLASSIFIER_FILE, models["latent"], {
        "latent": identity, "split_sha256": split.digest(), "budget": asdict(budget),
        "history": classifiers["latent"]["history"], "classes": list(CLASS_NAMES)})
    timing = bitstream_to_label_ms((models["latent"], models["pixel"], models["decoded"]),
                                   extractor, te, [i.name for i in parts["test"]],
                                   args.timing_images)
    print(f"timing: {timing}", flush=True)
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
    results = {
        "codec": identity["spec"], "codec_model": str(identity.get("model_hash") or ""),
        "latent_shape": list(tr.latents.shape[1:]), "test_bpp": te.bits_per_pixel,
        "train_images": len(tr.labels), "val_images": len(va.labels),
        "test_images": len(te.labels), "split_seed": split.seed, "split_sha256": split.digest(),
        "budget": asdict(budget), "classifiers": classifiers,
        "decoded_train": args.decoded_train, "timing_ms": timing,
        "heads": heads, "encrypted": encrypted, "seconds": time.perf_counter() - t0,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "analysis_tumour.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
