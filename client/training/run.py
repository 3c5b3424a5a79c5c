"""One training run: sample, train with checkpoints and MLflow, quantise, evaluate, record.

:func:`train_from_dicom` is ``fedcodec train``; :func:`train_on_volumes` is everything after the
data are read, shared with ``experiments/neural_train.py`` so both give the same weights from the
same volumes and settings. Outputs in ``RUN_DIR``: ``split.json``, ``checkpoint.pt``,
``weights.npz`` (load with ``--codec neural:weights=RUN_DIR/weights.npz``), ``training_curve.png``,
``summary.json`` and, by default, ``mlflow.db`` + ``mlartifacts/``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedcodec.client.training.checkpoint import (
    CHECKPOINT_NAME,
    RunCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from fedcodec.client.training.config import TrainConfig
from fedcodec.client.training.curve import write_training_curve
from fedcodec.client.training.data import load_training_series, split_by_series, split_record
from fedcodec.client.training.tracking import RunTracker, default_tracking_uri
from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.errors import FedcodecError

WEIGHTS_NAME = "weights.npz"
CURVE_NAME = "training_curve.png"


@dataclass
class TrainResult:
    weights_path: Path
    model_id: str
    global_step: int
    train_bpp: float
    """Estimated bits/pixel of the training samples under the integer model and tables."""
    heldout_bpp: float | None
    """The same on the held-out samples (None without a held-out set)."""
    per_network: dict[str, dict[str, float]] = field(default_factory=dict)
    coded: dict[str, float] = field(default_factory=dict)
    """Real coding of a few held-out slices: ``neural_bpp``, ``jxl_bpp``, ``slices``."""
    mlflow_run_id: str = ""
    model: object = None
    """The float :class:`NeuralPredictor` (for experiments that keep it)."""


def train_from_dicom(dicom_dir: Path, config: TrainConfig,
                     on_event: Callable | None = None) -> TrainResult:
    """``fedcodec train``: read ``dicom_dir``, split by series, train, write RUN_DIR."""
    _check_run_dir(config)
    series, skipped = load_training_series(dicom_dir, config.split_mosaics)
    train, held = split_by_series(series, config.holdout, config.seed)
    record = split_record(train, held, config.holdout, config.seed)
    split_path = Path(config.out) / "split.json"
    if config.resume and split_path.exists() and json.loads(split_path.read_text()) != record:
        raise FedcodecError(f"{split_path} records another split of the data; resume with the "
                            "same folder, --holdout and --seed, or start a new --out")
    write_atomic(split_path, json.dumps(record, indent=1).encode())
    _say(f"{len(series)} series ({sum(s.volume.shape[0] for s in series)} slices, {skipped} files "
         f"skipped): {len(train)} train, {len(held)} held out -> {split_path}", config)
    meta = {"source": str(dicom_dir), "split": "split.json"}
    return train_on_volumes([s.pair for s in train], [s.pair for s in held], config, meta,
                            on_event, slice_names=[s.name for s in held])


def train_on_volumes(train: list[tuple[np.ndarray, int]], held: list[tuple[np.ndarray, int]],
                     config: TrainConfig, meta: dict | None = None,
                     on_event: Callable | None = None,
                     slice_names: list[str] | None = None) -> TrainResult:
    """Train on ``(volume, bits)`` pairs, evaluate on ``held``; see the module docstring.

    ``on_event`` gets every :class:`TrainEvent` after the run has recorded it (tests use it to
    interrupt a run).
    """
    import torch

    from fedcodec.shared.neural.train import PredictorTrainer, collect_samples, float_bits

    if not train:
        raise FedcodecError("no training series (all were held out?)")
    _check_run_dir(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    ckpt_path = out / CHECKPOINT_NAME
    previous = load_checkpoint(ckpt_path)
    if previous is not None and previous.recipe != config.recipe():
        changed = sorted(k for k in config.recipe() if previous.recipe.get(k) != config.recipe()[k])
        raise FedcodecError(f"--resume with other settings than the checkpoint's: {', '.join(changed)}")
    if config.resume and previous is None:
        _say(f"no checkpoint in {out}: starting a new run", config)

    samples = collect_samples(train, config.fraction, config.series_pixels, config.seed,
                              config.progress, config.feature_set)
    from fedcodec.shared.neural.augment import AUGMENTATIONS, augmented_volumes

    copies = ([AUGMENTATIONS] if config.augment else []) \
        + ([("noise",)] if config.augment_noise else [])
    if copies:  # a quarter of the pixel budget per copy of a series
        from fedcodec.shared.neural.train import merge_samples

        samples = merge_samples([samples, *(
            collect_samples(augmented_volumes(train, kinds), config.fraction,
                            config.series_pixels // 4, config.seed + 2 + k, config.progress,
                            config.feature_set) for k, kinds in enumerate(copies))])
    held_samples = (collect_samples(held, config.fraction, config.series_pixels, config.seed + 1,
                                    config.progress, config.feature_set) if held else None)
    trainer = PredictorTrainer(samples, config.settings())
    state = previous or RunCheckpoint({}, config.recipe())
    if previous is not None:
        trainer.load_state_dict(previous.trainer)
        _say(f"resuming at step {trainer.global_step}", config)
    uri = default_tracking_uri(out) if config.tracking_uri is None else config.tracking_uri
    tracker = RunTracker(uri, config.experiment, out, out.name, state.mlflow_run_id)
    state.mlflow_run_id = tracker.run_id
    if previous is None:
        tracker.log_params({**config.recipe(), "threads": config.threads,
                            "train_series": len(train), "heldout_series": len(held),
                            **{f"samples_{k}": sum(len(t) for t in s.target)
                               for k, s in samples.items()}})

    def checkpoint() -> None:
        tracker.flush()  # metrics and checkpoint move together: a resume never logs twice
        state.trainer = trainer.state_dict()
        save_checkpoint(ckpt_path, state)

    bar = _progress(config, trainer.planned_steps(), trainer.global_step)
    try:
        for event in trainer.run():
            if event.kind == "step":
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{event.key} {event.loss:.3f} b/px", refresh=False)
                if event.step % config.log_every == 0 or event.step == event.steps:
                    state.history.append((event.global_step, event.key, event.loss))
                    tracker.metric(f"train_bits/{event.key}", event.loss, event.global_step)
                    tracker.metric("train_bits", event.loss, event.global_step)
                if event.global_step % config.checkpoint_every == 0:
                    checkpoint()
            else:
                tracker.metric(f"train_bits_all/{event.key}", event.loss, event.global_step)
                if held_samples is not None and held_samples[event.key].target:
                    value = float_bits(trainer.model, held_samples[event.key], event.key)
                    state.evals.append((event.global_step, event.key, value))
                    tracker.metric(f"heldout_float_bits/{event.key}", value, event.global_step)
                checkpoint()
            if on_event is not None:
                on_event(event)
    except BaseException:
        tracker.end("KILLED")
        raise
    finally:
        if bar is not None:
            bar.close()
    try:
        result = _finish(trainer, samples, held_samples, held, config, meta or {}, state, tracker,
                         slice_names)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    return result


def _finish(trainer, samples, held_samples, held, config: TrainConfig, meta: dict,
            state: RunCheckpoint, tracker: RunTracker, slice_names) -> TrainResult:
    """Quantise, fit tables, evaluate; write weights, curve and summary; log them."""
    from fedcodec.shared.neural.train import build_weights, estimated_bits

    out = Path(config.out)
    meta = {"name": out.name, **{k: v for k, v in config.recipe().items()}, **meta}
    weights = build_weights(trainer.model, samples, meta)
    weights_path = out / WEIGHTS_NAME
    weights.save(weights_path)
    step = trainer.global_step
    per_network: dict[str, dict[str, float]] = {}
    totals = {"train": [0.0, 0], "heldout": [0.0, 0]}
    for key in trainer.keys:
        entry = {}
        for side, source in (("train", samples), ("heldout", held_samples)):
            if source is None or not source[key].target:
                continue
            arrays = source[key].arrays()
            bits = estimated_bits(weights, arrays, key)
            entry[f"{side}_bpp"] = bits
            entry[f"{side}_pixels"] = int(arrays["target"].size)
            totals[side][0] += bits * arrays["target"].size
            totals[side][1] += arrays["target"].size
            tracker.metric(f"{side}_bpp/{key}", bits, step)
        per_network[key] = entry
    train_bpp = totals["train"][0] / max(1, totals["train"][1])
    heldout_bpp = totals["heldout"][0] / totals["heldout"][1] if totals["heldout"][1] else None
    tracker.metric("train_bpp", train_bpp, step)
    if heldout_bpp is not None:
        tracker.metric("heldout_bpp", heldout_bpp, step)
    coded = _code_heldout(weights_path, held, config.compare_slices) if held else {}
    for name, value in coded.items():
        tracker.metric(f"coded/{name}", value, step)
    curve = write_training_curve(out / CURVE_NAME, state.history, state.evals,
                                 f"fedcodec train: {out.name}")
    result = TrainResult(weights_path, weights.model_id.hex(), step, train_bpp, heldout_bpp,
                         per_network, coded, tracker.run_id, trainer.model)
    summary = {k: v for k, v in result.__dict__.items() if k != "model"}
    summary["weights_path"] = str(weights_path)
    summary["report"] = trainer.report
    write_atomic(out / "summary.json", json.dumps(summary, indent=1).encode())
    for path, folder in ((weights_path, "codec"), (curve, None), (out / "summary.json", None),
                         (out / "split.json", None)):
        if path.exists():
            tracker.log_artifact(path, folder)
    return result


def _code_heldout(weights_path: Path, held: list[tuple[np.ndarray, int]], count: int) -> dict:
    """Code ``count`` held-out slices (spread over the set) alone with the new weights and with
    JPEG XL; every neural stream is decoded and checked bit-exact."""
    from fedcodec.shared.codecs import get_codec

    if count <= 0:
        return {}
    index = [(i, j) for i, (volume, _) in enumerate(held) for j in range(volume.shape[0])]
    picks = [index[int(k)] for k in np.unique(np.linspace(0, len(index) - 1, count).round())]
    neural = get_codec(f"neural:weights={weights_path.resolve()},interslice=0")
    jxl = get_codec("jxl")
    neural_bits = jxl_bits = pixels = 0
    for i, j in picks:
        volume, bits = held[i]
        image = np.ascontiguousarray(volume[j])
        data = neural.encode(image, bits)
        if not np.array_equal(neural.decode(data), image):
            raise FedcodecError("new weights failed to round-trip a held-out slice (a bug)")
        neural_bits += 8 * len(data)
        jxl_bits += 8 * len(jxl.encode(image, bits))
        pixels += image.size
    return {"slices": float(len(picks)), "neural_bpp": neural_bits / pixels,
            "jxl_bpp": jxl_bits / pixels}


def _check_run_dir(config: TrainConfig) -> None:
    """Refuse to overwrite a run unless asked to continue it (before reading any data)."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise FedcodecError(f"--out {out} is a file, not a folder")
    if (out / CHECKPOINT_NAME).exists() and not config.resume:
        raise FedcodecError(f"{out} already holds a training run; pass --resume to continue it "
                            "or choose another --out")


def _progress(config: TrainConfig, total: int, initial: int):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=max(total, initial), initial=initial, desc="training", unit="step",
                dynamic_ncols=True)


def _say(text: str, config: TrainConfig) -> None:
    if config.progress:
        print(text, file=sys.stderr)
