"""``fedcodec train``: split by series, checkpoint + exact resume, MLflow, curve, usable weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_shared_data

from fedcodec.client.cli import main
from fedcodec.client.training.config import TrainConfig
from fedcodec.client.training.data import TrainingSeries, split_by_series
from fedcodec.client.training.run import train_from_dicom
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.dicom import read_series
from fedcodec.shared.neural.train import collect_samples
from fedcodec.shared.neural.weights import NeuralWeights

TINY = ["--hidden", "8", "--epochs", "1", "--min-steps", "6", "--max-steps", "6", "--batch", "512",
        "--threads", "1", "--checkpoint-every", "5", "--compare-slices", "1", "--no-progress"]


def _tiny_config(out: Path) -> TrainConfig:
    return TrainConfig(out=out, hidden=8, epochs=1, min_steps=6, max_steps=6, batch=512,
                       threads=1, checkpoint_every=5, compare_slices=1, progress=False)


def _one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def test_split_is_by_series_deterministic_and_disjoint() -> None:
    vol = np.zeros((1, 4, 4), np.uint16)
    series = [TrainingSeries(f"s{i}#{p}", f"1.{i}", vol, 12) for i in range(10) for p in range(2)]
    train, held = split_by_series(series, 0.2, seed=3)
    assert (train, held) == split_by_series(series, 0.2, seed=3)
    held_uids = {s.series_uid for s in held}
    assert len(held_uids) == 2 and len(held) == 4  # both parts of a UID go together
    assert held_uids.isdisjoint(s.series_uid for s in train)
    assert {s.series_uid for s in split_by_series(series, 0.2, seed=4)[1]} != held_uids


def test_slice_samples_are_collect_samples_split_by_slice() -> None:
    """The public per-slice API (federated slice units) holds exactly the trainer's samples."""
    from fedcodec.shared.neural.train import collect_samples, collect_slice_samples, merge_samples

    rng = np.random.default_rng(0)
    volume = rng.integers(0, 4096, (3, 24, 20)).astype(np.uint16)
    per_slice = collect_slice_samples(volume, 12, fraction=0.25, seed=7)
    assert [s.index for s in per_slice] == [0, 1, 2]
    assert not per_slice[0].samples["B1"].target and per_slice[1].samples["B1"].target
    whole = collect_samples([(volume, 12)], 0.25, series_pixels=volume.size, seed=7,
                            progress=False)
    merged = merge_samples([s.samples for s in per_slice])
    for key in whole:
        a, b = whole[key], merged[key]
        assert len(a.target) == len(b.target)
        if a.target:
            for name, array in a.arrays().items():
                np.testing.assert_array_equal(array, b.arrays()[name])


def test_train_resume_mlflow_curve_and_codec(tmp_path: Path, capsys) -> None:
    """An interrupted run resumed with --resume ends with the uninterrupted run's weights, in one
    MLflow run; the weights code a held-out series bit-exactly through the codec registry."""
    data = require_shared_data("dicom", "siemens", "siemens_c")
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert main(["train", str(data), "--out", str(whole), "--no-mlflow", *TINY]) == 0
    capsys.readouterr()

    def interrupt(event) -> None:
        if event.kind == "step" and event.global_step == 17:  # checkpoint at 15, mid-network
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_from_dicom(data, _tiny_config(resumed), on_event=interrupt)
    capsys.readouterr()
    # not resuming an existing run is refused before any work
    _one_error_line(capsys, main(["train", str(data), "--out", str(resumed), *TINY]))
    assert main(["train", str(data), "--out", str(resumed), "--resume", *TINY]) == 0
    out = capsys.readouterr().out
    assert "held out" in out and "JPEG XL" in out

    # a resume must repeat the recipe
    line = _one_error_line(capsys, main(["train", str(data), "--out", str(resumed), "--resume",
                                         *TINY[:-1], "--hidden", "16", "--no-progress"]))
    assert "hidden" in line

    a = NeuralWeights.load(whole / "weights.npz")
    b = NeuralWeights.load(resumed / "weights.npz")
    assert a.model_id == b.model_id
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["global_step"] == 9 * 6 and summary["heldout_bpp"] > 0

    split = json.loads((resumed / "split.json").read_text())
    train_uids = {s["series_uid"] for s in split["train"]}
    held_uids = {s["series_uid"] for s in split["heldout"]}
    assert train_uids and held_uids and train_uids.isdisjoint(held_uids)
    assert (resumed / "checkpoint.pt").is_file()
    assert (resumed / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{resumed / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fedcodec-train").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.data.params["hidden"] == "8" and "heldout_bpp" in run.data.metrics
    assert "heldout_float_bits/B0" in run.data.metrics
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_bits")]
    assert len(steps) == len(set(steps)) and max(steps) == 54  # resumed steps logged once
    artifacts = [f.path for f in client.list_artifacts(run.info.run_id, "codec")]
    assert artifacts == ["codec/weights.npz"]

    series, _ = read_series(data)
    held = next(s for s in series if s.series_uid in held_uids)
    codec = get_codec(f"neural:weights={resumed / 'weights.npz'}")
    streams = codec.encode_volume(held.volume, held.bits_stored)
    np.testing.assert_array_equal(codec.decode_volume(streams), held.volume)


def test_bad_inputs_give_one_line(tmp_path: Path, capsys) -> None:
    line = _one_error_line(capsys, main(["train", str(tmp_path / "absent"), "--out",
                                         str(tmp_path / "run")]))
    assert "not a folder" in line
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not DICOM")
    line = _one_error_line(capsys, main(["train", str(tmp_path / "notes"), "--out",
                                         str(tmp_path / "run")]))
    assert "no DICOM images" in line
    assert not (tmp_path / "run").exists()


def test_train_with_augmentation_samples_the_copies_and_records_it(tmp_path: Path) -> None:
    """``--augment`` adds the transposed, 8-bit and half-size copies to the samples (more of
    them than without), ``--augment-noise`` a noisier copy, both are part of the recipe a resume
    must repeat, and the weights are usable."""
    data = require_shared_data("dicom", "siemens", "siemens_c")
    out = tmp_path / "augmented"
    assert main(["train", str(data), "--out", str(out), "--no-mlflow", "--compare-slices", "0",
                 *TINY[:-3], "--augment", "--augment-noise", "--no-progress"]) == 0
    meta = NeuralWeights.load(out / "weights.npz").meta
    assert meta.get("augment") is True and meta.get("augment_noise") is True
    summary = json.loads((out / "summary.json").read_text())
    augmented = sum(n["train_pixels"] for n in summary["per_network"].values())
    split = json.loads((out / "split.json").read_text())
    train_uids = {s["series_uid"] for s in split["train"]}
    series, _ = read_series(data)
    plain = collect_samples([(s.volume, s.bits_stored) for s in series
                             if s.series_uid in train_uids], 1 / 8, 1 << 21, 0, False)
    # measured 4.33x the plain samples (3.33x with --augment alone): one more copy, noisier
    assert augmented > 4.0 * sum(len(x) for s in plain.values() for x in s.target)
    codec = get_codec(f"neural:weights={out / 'weights.npz'}")
    image = np.random.default_rng(0).integers(0, 4096, (40, 36)).astype(np.uint16)
    np.testing.assert_array_equal(codec.decode(codec.encode(image, 12)), image)
