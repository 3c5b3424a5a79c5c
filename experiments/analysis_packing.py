"""Encrypted batches: bytes and milliseconds per slice at batch sizes 1, 8, 64 and 459 (issue 15).

    nice -n 10 .venv/bin/python experiments/analysis_packing.py --out OUT [--quick]

Real path end to end: pooled ``neural-lossy`` latents of tumour slices (data set A and B of
``experiments/analysis_budget.py``, coded through the same content-keyed cache), a ``linear`` and
a ``poly-mlp`` head fitted on A's training part, the analysis service on localhost over mutual TLS
(certificates from ``fedcodec.server.pki``), and a site session per head and batch size
(``EncryptedClassifier``: packed CKKS ciphertexts, 8 hidden known-answer check slots, binding).

Per batch size B it sends ``--rounds`` requests of B slices and reports, per slice: bytes up (the
``EvaluateRequest`` messages), bytes down (``EvaluateReply``), site encrypt + decrypt ms, service
ms and round-trip ms; the public context (Galois keys included) is sent once per session and is
reported separately, with what a second session costs when the site kept its context
(``--keep-context``: nothing but the hash). Agreement = encrypted argmax equals plaintext argmax
over every slice sent. Writes ``OUT/packing.json`` and ``OUT/analysis_packing.md``.

``--full-galois-keys`` reproduces the earlier sites, which sent TenSEAL's full Galois key set
(every power-of-two step, both directions) instead of the keys for the layout's rotation steps:
run once with and once without it to compare context bytes and milliseconds under the same load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

from analysis_budget import CODEC, build_protocol  # noqa: E402

BATCHES = (1, 8, 64, 459)


def features_and_heads(out: Path, cache: Path, per_a: int, per_b: int):
    from fedcodec.client.analysis.coding_cache import code_images_cached
    from fedcodec.client.analysis.training import HeadBudget, fit_head
    from fedcodec.shared.analysis.dataset import LabelledImage, list_dataset, split_dataset
    from fedcodec.shared.analysis.heads import HEAD_KINDS
    from fedcodec.shared.analysis.image_input import InputPolicy
    from fedcodec.shared.analysis.latents import latent_extractor
    from fedcodec.shared.analysis.pooling import CHANNEL_MEAN_ABSMEAN, pool_latents

    a_root, b_root = build_protocol(out / "data", 0.8, per_a, per_b)
    split = split_dataset(a_root, seed=20261125)
    b_set = list_dataset(b_root, split.class_names)
    images = ([LabelledImage(f"A/{i.name}", i.label) for i in split.train]
              + [LabelledImage(f"A/{i.name}", i.label) for p in ("val", "test")
                 for i in split.part(p)]
              + [LabelledImage(f"B/{i.name}", i.label) for i in b_set.images])
    coded = code_images_cached(out / "data", images, CODEC, cache, policy=InputPolicy(),
                               description="coding")
    features = pool_latents(coded.latents)
    n_train = len(split.train)
    identity = latent_extractor(CODEC).identity()
    heads = {
        kind: fit_head(kind, features[:n_train], coded.labels[:n_train], features[n_train:],
                       coded.labels[n_train:], class_names=split.class_names,
                       pooling=CHANNEL_MEAN_ABSMEAN, latent_codec=identity["spec"],
                       latent_model_hash=identity.get("model_hash") or "",
                       budget=HeadBudget())
        for kind in HEAD_KINDS
    }
    return features, heads


def measure(features: np.ndarray, heads: dict, batches, rounds: int, work: Path) -> list[dict]:
    from fedcodec.client.analysis.remote import AnalysisClient, EncryptedClassifier
    from fedcodec.server import pki
    from fedcodec.server.analysis.listener import start_analysis_server
    from fedcodec.server.analysis.service import AnalysisService
    from fedcodec.shared.analysis.wire import AnalysisLimits

    pki.init_ca(work / "ca")
    pki.issue_server(work / "ca", work / "server")
    pki.issue_site(work / "ca", work / "site", "site-a")
    limits = AnalysisLimits()
    service = AnalysisService(heads, limits)
    running = start_analysis_server(service, work / "server")
    address = f"127.0.0.1:{running.port}"
    rows = []
    try:
        for kind, head in heads.items():
            kept = work / f"{kind}.ctx"
            for batch in batches:
                with AnalysisClient(address, work / "site", limits=limits) as client:
                    start = time.perf_counter()
                    session = EncryptedClassifier(client, kind, keep_context=kept)
                    setup_ms = (time.perf_counter() - start) * 1000.0
                    sent = 0
                    agree = total = 0
                    rng = np.random.default_rng(batch)
                    for _ in range(rounds):
                        pick = rng.choice(len(features), size=min(batch, len(features)),
                                          replace=False)
                        x = features[pick]
                        scores = session.scores(x)
                        agree += int((scores.argmax(1) == head.plain_scores(x).argmax(1)).sum())
                        total += len(x)
                        sent += len(x)
                    st = session.stats
                    rows.append({
                        "head": kind, "profile": head.profile.name, "batch": batch,
                        "slices": sent, "requests": st.requests,
                        "studies_per_ciphertext": head.studies_per_ciphertext,
                        "bytes_up_per_slice": st.bytes_sent / sent,
                        "bytes_down_per_slice": st.bytes_received / sent,
                        "encrypt_ms_per_slice": st.encrypt_ms / sent,
                        "decrypt_ms_per_slice": st.decrypt_ms / sent,
                        "server_ms_per_slice": st.server_evaluate_ms / sent,
                        "round_trip_ms_per_slice": st.round_trip_ms / sent,
                        "context_bytes_this_session": st.context_bytes,
                        "session_setup_ms": setup_ms,
                        "agreement": agree / total,
                    })
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        running.stop(grace=1.0)
    return rows


def full_key_public_context(context, _features: int) -> bytes:
    """What sites sent before: the public context with TenSEAL's full Galois key set."""
    full = context.copy()
    full.generate_galois_keys()
    return full.serialize(save_secret_key=False)


def context_sizes(heads: dict) -> dict:
    """Bytes of one public context per head: the layout's rotation keys vs the full key set."""
    from fedcodec.shared.analysis.ckks import (
        new_site_context,
        public_context_bytes,
        rotation_steps,
        slot_count,
    )

    sizes = {}
    for kind, head in heads.items():
        context = new_site_context(head.profile)
        sizes[kind] = {
            "steps": rotation_steps(slot_count(context), head.feature_count),
            "layout_keys_bytes": len(public_context_bytes(context, head.feature_count)),
            "full_keys_bytes": len(full_key_public_context(context, head.feature_count)),
        }
    return sizes


def markdown(rows: list[dict], sizes: dict | None = None) -> str:
    lines = [
        "| head | profile | batch | slices/ciphertext | kB up/slice | kB down/slice | "
        "encrypt+decrypt ms/slice | service ms/slice | round trip ms/slice | agreement |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['head']} | {r['profile']} | {r['batch']} | {r['studies_per_ciphertext']} | "
            f"{r['bytes_up_per_slice'] / 1000:.1f} | {r['bytes_down_per_slice'] / 1000:.1f} | "
            f"{r['encrypt_ms_per_slice'] + r['decrypt_ms_per_slice']:.2f} | "
            f"{r['server_ms_per_slice']:.2f} | {r['round_trip_ms_per_slice']:.2f} | "
            f"{100 * r['agreement']:.2f}% |")
    first = {r["head"]: r for r in rows if r["context_bytes_this_session"]}
    lines += ["", "Public context (public, relinearisation and Galois keys), sent once: "
              + ", ".join(
        f"{k} {v['context_bytes_this_session'] / 1e6:.1f} MB" for k, v in first.items())
        + "; later sessions with `--keep-context` send only its hash (measured: "
        + ", ".join(f"{r['head']} batch {r['batch']} {r['context_bytes_this_session']} bytes"
                    for r in rows if not r["context_bytes_this_session"])[:200] + ")."]
    setup = {r["head"]: r["session_setup_ms"] for r in rows if r["context_bytes_this_session"]}
    lines += ["", "First session set-up (new context, keys, register): " + ", ".join(
        f"{k} {v:.0f} ms" for k, v in setup.items()) + "."]
    for kind, size in (sizes or {}).items():
        lines.append(f"\n{kind}: public context with Galois keys for the rotation steps "
                     f"{size['steps']} {size['layout_keys_bytes'] / 1e6:.1f} MB; with TenSEAL's "
                     f"full key set {size['full_keys_bytes'] / 1e6:.1f} MB.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fedcodec-analysis-cache"))
    parser.add_argument("--per-class-a", type=int, default=200)
    parser.add_argument("--per-class-b", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--rounds", type=int, default=3, help="requests per batch size")
    parser.add_argument("--quick", action="store_true", help="4+2 slices per class, batches 1 8")
    parser.add_argument("--full-galois-keys", action="store_true",
                        help="sites send the full Galois key set (the earlier behaviour)")
    args = parser.parse_args(argv)
    if args.quick:
        args.per_class_a, args.per_class_b, args.batches, args.rounds = 12, 4, [1, 8], 1
    args.out.mkdir(parents=True, exist_ok=True)
    features, heads = features_and_heads(args.out, args.cache, args.per_class_a, args.per_class_b)
    if args.full_galois_keys:
        import fedcodec.client.analysis.remote as remote

        remote.public_context_bytes = full_key_public_context
    sizes = context_sizes(heads)
    with tempfile.TemporaryDirectory(prefix="fedcodec-packing-") as work:
        rows = measure(features, heads, args.batches, args.rounds, Path(work))
    for row in rows:
        row["galois_keys"] = "full" if args.full_galois_keys else "layout steps"
    (args.out / "packing.json").write_text(json.dumps({"rows": rows, "context_sizes": sizes},
                                                      indent=1))
    text = markdown(rows, sizes)
    (args.out / "analysis_packing.md").write_text(text)
    print(text)
    worst = min(r["agreement"] for r in rows)
    return 0 if worst >= 0.995 else 1


if __name__ == "__main__":
    sys.exit(main())
