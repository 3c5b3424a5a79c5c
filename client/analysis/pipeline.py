"""``fedcodec analyze train`` / ``eval``: the researcher's side of compressed-domain analysis.

Train: list any ImageFolder-style data set (:mod:`fedcodec.shared.analysis.dataset`), split it
(seeded, by patient when ids are known, saved), code the slices with the neural codec under the
model's input policy (cached by content hash, on every core), train the latent classifier on the
entropy-decoded latents, and fit the encrypted-inference heads on the pooled latents; everything
lands in one model folder (:mod:`.model_files`), class names and input policy included. Eval:
a split part of the training data, or any other folder whose class folders are mapped to the
model's classes by name; accuracy, macro-F1, confusion matrix (JSON + PNG) and the time from
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
from fedcodec.client.analysis.coding_cache import (
    DEFAULT_CACHE_DIR,
    code_images_cached,
    default_workers,
)
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
    PATIENT_CAVEAT,
    LabelledImage,
    Split,
    has_part_layout,
    list_dataset,
    load_split,
    read_patient_csv,
    save_split,
    split_dataset,
)
from fedcodec.shared.analysis.image_input import InputPolicy
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


@dataclass(frozen=True)
class Coder:
    """How slices are coded: the real codec in parallel workers with the on-disk cache, or (for
    tests and custom extractors) one given extractor in this process."""

    spec: str
    extractor: LatentExtractor | None = None
    cache_dir: Path = DEFAULT_CACHE_DIR
    workers: int = 0
    progress: bool = True

    def code(self, root: Path, images: list[LabelledImage], policy: InputPolicy,
             description: str) -> CodedImages:
        if self.extractor is not None:
            return code_images(root, images, self.extractor, description=description,
                               progress=self.progress, policy=policy)
        return code_images_cached(root, images, self.spec, self.cache_dir, policy=policy,
                                  workers=self.workers or default_workers(),
                                  progress=self.progress, description=description)


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
    class_names: tuple[str, ...] = ()
    input_policy: str = ""
    grouped_by_patient: bool = False


def parse_class_names(text: str | None, folders: tuple[str, ...]) -> tuple[str, ...]:
    """``--class-names 0=pituitary,1=meningioma`` -> display names in folder order."""
    if not text:
        return folders
    mapping = {}
    for pair in text.split(","):
        folder, sep, name = pair.partition("=")
        if not sep or not folder.strip() or not name.strip():
            raise FedcodecError(f"--class-names takes FOLDER=NAME pairs, got {pair!r}")
        if folder.strip() not in folders:
            raise FedcodecError(f"--class-names: no class folder {folder.strip()!r} "
                                f"(folders: {', '.join(folders)})")
        mapping[folder.strip()] = name.strip()
    names = tuple(mapping.get(f, f) for f in folders)
    if len(set(names)) != len(names):
        raise FedcodecError(f"--class-names gives two classes one name: {', '.join(names)}")
    return names


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
    test_root: Path | None = None,
    patients_csv: Path | None = None,
    class_names: str | None = None,
    input_policy: InputPolicy | None = None,
    cache_dir: Path | None = None,
    workers: int = 0,
) -> TrainSummary:
    """Train the latent classifier and both heads; write the model folder."""
    budget = budget or TrainConfig()
    head_budget = head_budget or HeadBudget()
    policy = input_policy or InputPolicy()
    start = time.perf_counter()
    model_dir = Path(model_dir)
    if split_file is not None and Path(split_file).exists():
        split = load_split(split_file)
    else:
        patients = read_patient_csv(patients_csv) if patients_csv else None
        split = split_dataset(data_root, test_root=test_root, seed=seed, patients=patients,
                              input_policy=policy)
    policy = split.input_policy
    labels = parse_class_names(class_names, split.class_names)
    extractor_for_id = extractor or latent_extractor(codec)
    identity = extractor_for_id.identity()
    coder = Coder(identity["spec"], extractor, cache_dir or DEFAULT_CACHE_DIR, workers, progress)
    train = coder.code(split.root("train", data_root), limit_per_class(split.train, limit),
                       policy, "coding train")
    val = coder.code(split.root("val", data_root), limit_per_class(split.val, limit),
                     policy, "coding val")
    if len(train.labels) == 0 or len(val.labels) == 0:
        raise FedcodecError("no training or validation images")
    classes = len(labels)
    config = ClassifierConfig(LATENT, in_channels=train.latents.shape[1], arch=arch,
                              classes=classes)
    model, history = train_classifier(
        config, train.latents, train.labels, val.latents, val.labels, budget,
        description="latent classifier", progress=progress,
    )
    val_report = classification_report(val.labels, predict(model, val.latents), classes)
    # nothing is written before coding and training succeeded: no half-written model folder
    save_split(split, model_dir / SPLIT_FILE)
    save_classifier(model_dir / CLASSIFIER_FILE, model, {
        "latent": identity, "split_sha256": split.digest(), "budget": asdict(budget),
        "history": history, "classes": list(labels), "class_folders": list(split.class_names),
        "input_policy": policy.to_json(), "grouped_by_patient": split.grouped_by_patient,
    })
    head_acc = {}
    train_f, val_f = pool_latents(train.latents), pool_latents(val.latents)
    for kind in HEAD_KINDS:
        head = fit_head(
            kind, train_f, train.labels, val_f, val.labels, class_names=labels,
            pooling=CHANNEL_MEAN_ABSMEAN, latent_codec=identity["spec"],
            latent_model_hash=identity.get("model_hash") or "", budget=head_budget,
        )
        head.save(head_path(model_dir, kind))
        head_acc[kind] = float((head.plain_scores(val_f).argmax(1) == val.labels).mean())
    summary = TrainSummary(
        str(model_dir), identity["spec"], len(train.labels), len(val.labels),
        tuple(int(s) for s in train.latents.shape[1:]), val_report.accuracy, head_acc,
        time.perf_counter() - start, labels, policy.describe(), split.grouped_by_patient,
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


def eval_images(split: Split, meta: dict[str, Any], data_root: Path, part: str
                ) -> tuple[Path, tuple[LabelledImage, ...], str]:
    """What ``eval`` classifies: the split's part when ``data_root`` is the training data,
    otherwise every slice of the other folder (its ``part/`` folder if it has parts), its class
    folders mapped to the model's classes by folder or class name. Returns the root, the images
    and the patient caveat ("" when patient ids keep parts apart or the folder is independent)."""
    data_root = Path(data_root)
    trained_on = split.roots.get("data")
    if trained_on is None or Path(trained_on) == data_root.resolve():
        return split.root(part, data_root), split.part(part), split.caveat
    folder = data_root / part if has_part_layout(data_root) else data_root
    folders = tuple(meta.get("class_folders") or split.class_names)
    names = tuple(meta.get("classes") or folders)
    dataset = list_dataset(folder, folders, aliases=names)
    return folder, dataset.images, ""


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
    cache_dir: Path | None = None,
    workers: int = 0,
) -> dict[str, Any]:
    """Accuracy, macro-F1, confusion (JSON + PNG), ms/image: latent classifier and heads."""
    model_dir = Path(model_dir)
    model, meta = load_classifier(model_dir / CLASSIFIER_FILE)
    split = load_split(model_dir / SPLIT_FILE)
    spec = meta.get("latent", {}).get("spec", DEFAULT_LATENT_CODEC)
    # the folder first: a class the model does not know fails before the codec is loaded
    root, images, caveat = eval_images(split, meta, data_root, part)
    timing_extractor = extractor or latent_extractor(spec)
    trained_on = meta.get("latent", {}).get("model_hash")
    if trained_on and timing_extractor.identity().get("model_hash") not in (None, "", trained_on):
        raise FedcodecError(
            f"the classifier was trained on latents of codec model {trained_on}, this codec is "
            f"{timing_extractor.identity().get('model_hash')}"
        )
    policy = InputPolicy.from_json(meta.get("input_policy")) if "input_policy" in meta \
        else split.input_policy
    labels = tuple(meta.get("classes") or split.class_names)
    coder = Coder(spec, extractor, cache_dir or DEFAULT_CACHE_DIR, workers, progress)
    coded = coder.code(root, limit_per_class(images, limit), policy, f"coding {part}")
    if len(coded.labels) == 0:
        raise FedcodecError(f"no images to evaluate in {root}")
    report = classification_report(coded.labels, predict(model, coded.latents), len(labels))
    result: dict[str, Any] = {
        "part": part,
        "data": str(root),
        "images": len(coded.labels),
        "codec": spec,
        "class_names": list(labels),
        "input_policy": policy.to_json(),
        "bits_per_pixel": coded.bits_per_pixel,
        "latent_classifier": report.to_json(),
        "latent_ms_per_image": time_latent_path(model, timing_extractor,
                                                coded.streams[:timing_images]),
        "caveat": caveat,
    }
    features = pool_latents(coded.latents)
    for kind in HEAD_KINDS:
        if head_path(model_dir, kind).exists():
            head = load_head(head_path(model_dir, kind))
            predicted = head.plain_scores(features).argmax(1)
            result[f"head_{kind}"] = classification_report(
                coded.labels, predicted, len(labels)
            ).to_json()
    out_dir = Path(out_dir) if out_dir else model_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    save_confusion_png(report, labels, f"latent classifier ({part})",
                       out_dir / f"confusion-latent-{part}.png")
    (out_dir / f"eval-{part}.json").write_text(json.dumps(result, indent=1))
    return result


__all__ = ["PATIENT_CAVEAT", "TrainSummary", "evaluate_analysis", "train_analysis"]
