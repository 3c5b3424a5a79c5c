"""``fedcodec analyze train`` / ``eval``: the researcher's side of compressed-domain analysis.

Train: split the tumour slices (seeded, saved), code them with the neural codec, train the
latent classifier on the entropy-decoded latents, and fit the encrypted-inference heads on the
pooled latents; everything lands in one model folder (:mod:`.model_files`). Eval: the same
coding on a split part, then accuracy, macro-F1, confusion matrix (JSON + PNG) and the time from
bitstream to label per image.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedcodec.client.analysis.coding import CodedImages, code_images
from fedcodec.client.analysis.model_files import (
    CLASSIFIER_FILE,
    SPLIT_FILE,
    TRAIN_FILE,
    load_classifier,
    save_classifier,
)
from fedcodec.client.analysis.training import (
    HeadBudget,
    TrainConfig,
    fit_head,
    predict,
    train_classifier,
)
from fedcodec.shared.analysis.classifier import (
    DEFAULT_LATENT_ARCH,
    LATENT,
    ClassifierConfig,
    LatentStatsNet,
    TumourClassifier,
)
from fedcodec.shared.analysis.dataset import (
    CLASS_NAMES,
    LabelledImage,
    Split,
    list_labelled_images,
    load_split,
    make_split,
    save_split,
)
from fedcodec.shared.analysis.heads import HEAD_KINDS, head_path, load_head
from fedcodec.shared.analysis.latents import DEFAULT_LATENT_CODEC, LatentExtractor, latent_extractor
from fedcodec.shared.analysis.metrics import classification_report, save_confusion_png
from fedcodec.shared.analysis.pooling import CHANNEL_MEAN_ABSMEAN, pool_latents
from fedcodec.shared.errors import FedcodecError


def limit_per_class(images: tuple[LabelledImage, ...], limit: int | None) -> list[LabelledImage]:
    """The first ``limit`` images of each class (all when ``limit`` is None), order kept."""
    if limit is None:
        return list(images)
    seen: dict[int, int] = {}
    chosen = []
    for image in images:
        if seen.get(image.label, 0) < limit:
            seen[image.label] = seen.get(image.label, 0) + 1
            chosen.append(image)
    return chosen


def split_for(data_root: Path, split_file: Path | None, seed: int) -> Split:
    if split_file is not None and Path(split_file).exists():
        return load_split(split_file)
    return make_split(list_labelled_images(data_root), seed=seed)


@dataclass(frozen=True)
class TrainSummary:
    model_dir: str
    codec: str
    train_images: int
    val_images: int
    latent_shape: tuple[int, ...]
    classifier_val_accuracy: float
    head_val_accuracy: dict[str, float]
    seconds: float


def train_analysis(
    data_root: Path,
    model_dir: Path,
    *,
    codec: str = DEFAULT_LATENT_CODEC,
    split_file: Path | None = None,
    seed: int = 20261125,
    limit: int | None = None,
    budget: TrainConfig | None = None,
    head_budget: HeadBudget | None = None,
    extractor: LatentExtractor | None = None,
    progress: bool = True,
    arch: str = DEFAULT_LATENT_ARCH,
) -> TrainSummary:
    """Train the latent classifier and both heads; write the model folder."""
    budget = budget or TrainConfig()
    head_budget = head_budget or HeadBudget()
    start = time.perf_counter()
    model_dir = Path(model_dir)
    split = split_for(data_root, split_file, seed)
    save_split(split, model_dir / SPLIT_FILE)
    extractor = extractor or latent_extractor(codec)
    identity = extractor.identity()
    train = code_images(data_root, limit_per_class(split.train, limit), extractor,
                        description="coding train", progress=progress)
    val = code_images(data_root, limit_per_class(split.val, limit), extractor,
                      description="coding val", progress=progress)
    if len(train.labels) == 0 or len(val.labels) == 0:
        raise FedcodecError("no training or validation images")
    config = ClassifierConfig(LATENT, in_channels=train.latents.shape[1], arch=arch)
    model, history = train_classifier(
        config, train.latents, train.labels, val.latents, val.labels, budget,
        description="latent classifier", progress=progress,
    )
    val_report = classification_report(val.labels, predict(model, val.latents), len(CLASS_NAMES))
    save_classifier(model_dir / CLASSIFIER_FILE, model, {
        "latent": identity, "split_sha256": split.digest(), "budget": asdict(budget),
        "history": history, "classes": list(CLASS_NAMES),
    })
    head_acc = {}
    train_f, val_f = pool_latents(train.latents), pool_latents(val.latents)
    for kind in HEAD_KINDS:
        head = fit_head(
            kind, train_f, train.labels, val_f, val.labels, class_names=CLASS_NAMES,
            pooling=CHANNEL_MEAN_ABSMEAN, latent_codec=identity["spec"],
            latent_model_hash=identity.get("model_hash") or "", budget=head_budget,
        )
        head.save(head_path(model_dir, kind))
        head_acc[kind] = float((head.plain_scores(val_f).argmax(1) == val.labels).mean())
    summary = TrainSummary(
        str(model_dir), identity["spec"], len(train.labels), len(val.labels),
        tuple(int(s) for s in train.latents.shape[1:]), val_report.accuracy, head_acc,
        time.perf_counter() - start,
    )
    (model_dir / TRAIN_FILE).write_text(json.dumps(asdict(summary), indent=1))
    return summary


def time_latent_path(
    model: TumourClassifier | LatentStatsNet, extractor: LatentExtractor, streams: list[bytes]
) -> float:
    """Mean milliseconds from bitstream to label, one image at a time (entropy decode + CNN)."""
    if not streams:
        return 0.0
    torch.set_num_threads(1)  # per-image latency: one thread (see TrainConfig.threads)
    start = time.perf_counter()
    with torch.no_grad():
        for stream in streams:
            y = extractor.latents(stream).astype(np.float32)
            model(torch.from_numpy(y)[None]).argmax(1)
    return (time.perf_counter() - start) * 1000.0 / len(streams)


def evaluate_analysis(
    model_dir: Path,
    data_root: Path,
    *,
    part: str = "test",
    limit: int | None = None,
    out_dir: Path | None = None,
    timing_images: int = 32,
    extractor: LatentExtractor | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Accuracy, macro-F1, confusion (JSON + PNG), ms/image: latent classifier and heads."""
    model_dir = Path(model_dir)
    model, meta = load_classifier(model_dir / CLASSIFIER_FILE)
    split = load_split(model_dir / SPLIT_FILE)
    spec = meta.get("latent", {}).get("spec", DEFAULT_LATENT_CODEC)
    extractor = extractor or latent_extractor(spec)
    trained_on = meta.get("latent", {}).get("model_hash")
    if trained_on and extractor.identity().get("model_hash") not in (None, "", trained_on):
        raise FedcodecError(
            f"the classifier was trained on latents of codec model {trained_on}, this codec is "
            f"{extractor.identity().get('model_hash')}"
        )
    coded: CodedImages = code_images(data_root, limit_per_class(split.part(part), limit),
                                     extractor, description=f"coding {part}", progress=progress)
    report = classification_report(coded.labels, predict(model, coded.latents), len(CLASS_NAMES))
    result: dict[str, Any] = {
        "part": part,
        "images": len(coded.labels),
        "codec": spec,
        "bits_per_pixel": coded.bits_per_pixel,
        "latent_classifier": report.to_json(),
        "latent_ms_per_image": time_latent_path(model, extractor, coded.streams[:timing_images]),
        "caveat": "patient IDs unknown: slices of one patient may be in train and test",
    }
    features = pool_latents(coded.latents)
    for kind in HEAD_KINDS:
        if head_path(model_dir, kind).exists():
            head = load_head(head_path(model_dir, kind))
            predicted = head.plain_scores(features).argmax(1)
            result[f"head_{kind}"] = classification_report(
                coded.labels, predicted, len(CLASS_NAMES)
            ).to_json()
    out_dir = Path(out_dir) if out_dir else model_dir
    save_confusion_png(report, CLASS_NAMES, f"latent classifier ({part})",
                       out_dir / f"confusion-latent-{part}.png")
    (out_dir / f"eval-{part}.json").write_text(json.dumps(result, indent=1))
    return result
