"""``fedcodec analyze``: latent classifiers (train, eval) and encrypted remote analysis."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

from fedcodec.shared.errors import FedcodecError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze", help="classify studies from codec latents; encrypted inference on a service"
    )
    actions = parser.add_subparsers(dest="analyze_action", metavar="ACTION", required=True)

    train = actions.add_parser("train", help="train the latent classifier and encrypted heads")
    train.add_argument("--data", type=Path, required=True,
                       help="data folder: CLASS/IMAGE... (any class names), or train/ [val/] "
                            "test/ folders of CLASS/...; PNG, JPEG, DICOM or NIfTI")
    train.add_argument("--test-data", type=Path,
                       help="a separate test folder (CLASS/...); --data is then split into "
                            "train and validation only")
    train.add_argument("--patients", type=Path, metavar="CSV",
                       help="path,patient_id rows (paths relative to --data): split by patient "
                            "(DICOM PatientID is used without it)")
    train.add_argument("--class-names", metavar="FOLDER=NAME,...",
                       help="display names for class folders (e.g. 0=pituitary,1=meningioma)")
    train.add_argument("--input-size", type=int, default=512,
                       help="side of the square input every slice is brought to (default 512)")
    train.add_argument("--input-policy", default="fit", choices=("fit", "pad"),
                       help="fit: resize preserving aspect + zero-pad (default); pad: centred "
                            "zero padding/crop without resizing (earlier runs)")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument("--codec", default="neural-lossy", help="latent codec spec")
    train.add_argument("--split", type=Path, help="reuse this split file (default: new, seeded)")
    train.add_argument("--seed", type=int, default=20261125, help="split seed")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--arch", default=None,
                       help="latent classifier: gn-stats (default), stats-mlp or trunk")
    train.add_argument("--limit", type=int, help="at most N images per class and split part")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    _coding_options(train)
    train.set_defaults(func=_train)

    evaluate = actions.add_parser("eval", help="accuracy, macro-F1, confusion, ms per image")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True,
                          help="the training data (evaluates --part of its split) or any other "
                               "folder of CLASS/... (classes matched to the model's by name)")
    evaluate.add_argument("--part", default="test", choices=("train", "val", "test"))
    evaluate.add_argument("--limit", type=int, help="at most N images per class")
    evaluate.add_argument("--out", type=Path, help="where to write JSON/PNG (default: --model)")
    evaluate.add_argument("--quiet", action="store_true")
    _coding_options(evaluate)
    evaluate.set_defaults(func=_eval)

    remote = actions.add_parser(
        "remote", help="classify .fcz studies on an analysis service (features CKKS-encrypted)"
    )
    remote.add_argument("studies", type=Path, nargs="+", metavar="STUDY.fcz")
    remote.add_argument(
        "--service", default=os.environ.get("FEDCODEC_ANALYSIS_SERVICE"),
        help="HOST:PORT of the analysis service (env FEDCODEC_ANALYSIS_SERVICE)",
    )
    remote.add_argument(
        "--tls-dir", type=Path, default=os.environ.get("FEDCODEC_TLS_DIR"),
        help="folder with site.pem, site.key, ca.pem (env FEDCODEC_TLS_DIR)",
    )
    remote.add_argument("--head", default="", help="linear or poly-mlp (default: service's)")
    remote.add_argument("--pin", default="", help="refuse unless the service's model hash is this")
    remote.add_argument("--checks", type=int, default=8, help="known-answer slots per request")
    remote.add_argument("--timeout", type=float, default=600.0)
    remote.add_argument("--keep-context", type=Path, metavar="FILE",
                        help="keep this site's CKKS context (holds the SECRET key, mode 0600) in "
                             "FILE; later sessions only name it by hash if the service still "
                             "caches it")
    remote.add_argument("--json", action="store_true")
    remote.set_defaults(func=_remote)


def _coding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path,
                        help="coded-slice cache (default ~/.cache/fedcodec/analysis; entries are "
                             "keyed by file content, codec and codec model)")
    parser.add_argument("--workers", type=int, default=0,
                        help="coding processes (default: every core)")


def _train(args: argparse.Namespace) -> int:
    from fedcodec.client.analysis.pipeline import train_analysis
    from fedcodec.client.analysis.training import TrainConfig
    from fedcodec.shared.analysis.classifier import ARCHS, DEFAULT_LATENT_ARCH

    arch = args.arch or DEFAULT_LATENT_ARCH
    if arch not in ARCHS:
        raise FedcodecError(f"unknown latent classifier {arch!r}; use one of {', '.join(ARCHS)}")
    from fedcodec.shared.analysis.image_input import InputPolicy

    if args.epochs < 1:
        raise FedcodecError("--epochs must be at least 1")
    summary = train_analysis(
        args.data, args.out, codec=args.codec, split_file=args.split, seed=args.seed,
        limit=args.limit, budget=replace(TrainConfig(), epochs=args.epochs),
        progress=not args.quiet, arch=arch, test_root=args.test_data,
        patients_csv=args.patients, class_names=args.class_names,
        input_policy=InputPolicy(args.input_size, args.input_policy),
        cache_dir=args.cache_dir, workers=args.workers,
    )
    print(f"classes: {', '.join(summary.class_names)}; input: {summary.input_policy}; split "
          + ("by patient" if summary.grouped_by_patient else "by slice (patient IDs unknown)"))
    print(f"trained on {summary.train_images} slices ({args.codec} latents "
          f"{'x'.join(map(str, summary.latent_shape))}), validation accuracy "
          f"{summary.classifier_val_accuracy:.3f}; heads: "
          + ", ".join(f"{k} {v:.3f}" for k, v in summary.head_val_accuracy.items()))
    print(f"model folder: {summary.model_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from fedcodec.client.analysis.pipeline import evaluate_analysis

    result = evaluate_analysis(args.model, args.data, part=args.part, limit=args.limit,
                               out_dir=args.out, progress=not args.quiet,
                               cache_dir=args.cache_dir, workers=args.workers)
    latent = result["latent_classifier"]
    print(f"{result['part']}: {result['images']} slices at {result['bits_per_pixel']:.3f} bpp; "
          f"latent classifier accuracy {latent['accuracy']:.3f}, macro-F1 "
          f"{latent['macro_f1']:.3f}, {result['latent_ms_per_image']:.1f} ms/image "
          "(bitstream to label)")
    for key in ("head_linear", "head_poly-mlp"):
        if key in result:
            print(f"{key.removeprefix('head_')} head (plaintext): accuracy "
                  f"{result[key]['accuracy']:.3f}, macro-F1 {result[key]['macro_f1']:.3f}")
    if result["caveat"]:
        print("caveat: " + result["caveat"])
    return 0


def _remote(args: argparse.Namespace) -> int:
    from fedcodec.client.analysis.site import SERIES_RULE, analyze_remote

    if not args.service:
        raise FedcodecError("no analysis service given (--service HOST:PORT)")
    if not args.tls_dir:
        raise FedcodecError("no TLS folder given (--tls-dir DIR)")
    result = analyze_remote(
        args.studies, args.service, args.tls_dir, head=args.head, pinned_model_hash=args.pin,
        checks=args.checks, timeout=args.timeout, keep_context=args.keep_context,
    )
    if args.json:
        print(json.dumps({"head": result.head, "model_hash": result.model_hash,
                          "series": [asdict(s) for s in result.series],
                          "stats": asdict(result.stats)}, indent=1))
        return 0
    for s in result.series:
        counts = {name: s.slice_labels.count(name) for name in dict.fromkeys(s.slice_labels)}
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        print(f"{s.study} series {s.series} ({s.description or 'no description'}): {s.label} "
              f"[votes: {', '.join(f'{k} {v}' for k, v in ranked)} of {len(s.slice_labels)} "
              "slices]")
    st = result.stats
    context = (f"public context {st.context_bytes} bytes (once)" if st.context_bytes
               else "public context cached by the service (sent by hash)")
    print(f"{result.head} head, model {result.model_hash[:16]}; {st.studies} slices in "
          f"{st.requests} encrypted request(s), {st.bytes_sent} bytes sent, "
          f"{st.bytes_received} received, {context}; every result passed its known-answer check")
    print(SERIES_RULE)
    return 0
