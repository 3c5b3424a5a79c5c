"""Any data set for ``fedcodec analyze``: class names, layouts, formats, input policy, patient
splits and the content-keyed coding cache (issue 15, item 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imagecodecs
import nibabel as nib
import numpy as np
import pytest

from fedcodec.client.analysis import coding_cache
from fedcodec.client.analysis.pipeline import evaluate_analysis, train_analysis
from fedcodec.client.analysis.training import HeadBudget, TrainConfig
from fedcodec.shared.analysis.dataset import (
    LabelledImage,
    list_dataset,
    load_image,
    load_split,
    make_split,
    read_patient_csv,
    split_dataset,
)
from fedcodec.shared.analysis.image_input import InputPolicy
from fedcodec.shared.errors import FedcodecError

CLASSES = ("glioma", "meningioma", "no tumour", "pituitary")


class FakeExtractor:
    """Deterministic stand-in for the codec: 'latents' are 16x16 block means of the input."""

    def encode(self, image: np.ndarray, bits: int) -> bytes:
        return np.ascontiguousarray(image, dtype=np.uint8).tobytes()

    def latents(self, stream: bytes) -> np.ndarray:
        image = np.frombuffer(stream, dtype=np.uint8).reshape(512, 512).astype(np.float32)
        m = image.reshape(32, 16, 32, 16).mean(axis=(1, 3)) / 255.0
        return np.stack([m, m**2, np.sqrt(m), 1.0 - m]).astype(np.float32)

    def decode(self, stream: bytes) -> np.ndarray:
        return np.frombuffer(stream, dtype=np.uint8).reshape(512, 512)

    def identity(self) -> dict:
        return {"spec": "fake", "model_hash": "0" * 16}


def _picture(path: Path, value: int, shape=(300, 240), suffix=".png") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    image = np.clip(rng.normal(value, 10, shape), 0, 255).astype(np.uint8)
    imagecodecs.imwrite(str(path.with_suffix(suffix)), image)


def _folder(root: Path, per_class: int, classes=CLASSES) -> Path:
    for c, name in enumerate(classes):
        for k in range(per_class):
            _picture(root / name / f"s{k}", 40 + 50 * c + k, suffix=(".png", ".jpg")[k % 2])
    return root


def test_any_class_names_and_count(tmp_path) -> None:
    data = _folder(tmp_path / "data", 3)
    dataset = list_dataset(data)
    assert dataset.class_names == CLASSES  # four classes, names with spaces, sorted
    assert len(dataset.images) == 12
    assert {i.label for i in dataset.images} == {0, 1, 2, 3}
    split = split_dataset(data, seed=1)
    assert sum(len(split.part(p)) for p in ("train", "val", "test")) == 12
    for part in ("train", "val", "test"):  # tiny classes still reach every part
        assert {i.label for i in split.part(part)} == {0, 1, 2, 3}


def test_separate_test_folder_and_part_layout(tmp_path) -> None:
    train = _folder(tmp_path / "train-only", 4)
    other = _folder(tmp_path / "elsewhere", 2, classes=("pituitary", "glioma"))
    split = split_dataset(train, test_root=other)
    assert len(split.test) == 4 and len(split.train) + len(split.val) == 16
    assert split.roots["test"] == str(other.resolve())
    assert {split.class_names[i.label] for i in split.test} == {"pituitary", "glioma"}

    layout = tmp_path / "parts"
    _folder(layout / "train", 4)
    _folder(layout / "test", 1)
    split = split_dataset(layout)
    assert len(split.test) == 4 and len(split.train) + len(split.val) == 16
    assert split.roots["train"] == str((layout / "train").resolve())
    with pytest.raises(FedcodecError, match="own test/ folder"):
        split_dataset(layout, test_root=other)


def test_unknown_class_folder_is_refused_by_name(tmp_path) -> None:
    data = _folder(tmp_path / "d", 1, classes=("glioma", "weird"))
    with pytest.raises(FedcodecError, match="weird the model does not know"):
        list_dataset(data, ("0", "1"), aliases=("glioma", "meningioma"))
    mapped = list_dataset(_folder(tmp_path / "e", 1, classes=("meningioma",)), ("0", "1"),
                          aliases=("glioma", "meningioma"))
    assert [i.label for i in mapped.images] == [1]


def test_dicom_and_nifti_slices(tmp_path) -> None:
    volume = (np.arange(4 * 20 * 30) % 3000).reshape(30, 20, 4).astype(np.int16)
    (tmp_path / "d" / "a").mkdir(parents=True)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "d" / "a" / "vol.nii.gz")
    _picture(tmp_path / "d" / "b" / "x", 100)
    dataset = list_dataset(tmp_path / "d")
    names = [i.name for i in dataset.images]
    assert names == [f"a/vol.nii.gz#{k}" for k in range(4)] + ["b/x.png"]
    pixels = load_image(tmp_path / "d", dataset.images[1], InputPolicy())
    assert pixels.shape == (512, 512) and pixels.dtype == np.uint8 and pixels.max() == 255


def test_fit_policy_resizes_preserving_aspect(tmp_path) -> None:
    _picture(tmp_path / "c" / "x", 200, shape=(256, 128))
    image = LabelledImage("c/x.png", 0)
    fitted = load_image(tmp_path, image, InputPolicy(512, "fit"))
    rows, cols = np.nonzero(fitted)
    assert rows.min() == 0 and rows.max() == 511  # longer side scaled 256 -> 512
    assert cols.min() == 128 and cols.max() == 383  # 128 -> 256 wide, centred
    padded = load_image(tmp_path, image, InputPolicy(512, "pad"))
    assert np.count_nonzero(padded) <= 256 * 128
    with pytest.raises(FedcodecError, match="unknown input policy"):
        InputPolicy(512, "stretch")


def test_patient_csv_keeps_each_patient_in_one_part(tmp_path) -> None:
    data = _folder(tmp_path / "d", 10, classes=("a", "b"))
    rows = ["path,patient_id"] + [f"{c}/s{k}.{('png', 'jpg')[k % 2]},{c}-p{k // 2}"
                                  for c in ("a", "b") for k in range(10)]
    (tmp_path / "patients.csv").write_text("\n".join(rows))
    patients = read_patient_csv(tmp_path / "patients.csv")
    split = split_dataset(data, patients=patients, seed=3)
    assert split.grouped_by_patient and split.caveat == ""
    owners = {p: {i.patient for i in split.part(p)} for p in ("train", "val", "test")}
    assert not (owners["train"] & owners["val"] or owners["train"] & owners["test"]
                or owners["val"] & owners["test"])
    del patients["a/s0.png"]
    with pytest.raises(FedcodecError, match="names no patient"):
        split_dataset(data, patients=patients)


def test_split_without_patients_says_so() -> None:
    images = [LabelledImage(f"{k}.png", k % 2) for k in range(20)]
    split = make_split(images, seed=0)
    assert not split.grouped_by_patient and "patient IDs unknown" in split.caveat


def test_cache_keys_follow_content_not_names(tmp_path) -> None:
    """Two data sets with the same file names never share entries; the same bytes do."""
    one = _folder(tmp_path / "one", 1, classes=("x",))
    two = tmp_path / "two"
    _picture(two / "x" / "s0", 222)  # same relative name as in `one`, other pixels
    image = LabelledImage("x/s0.png", 0)
    folder = tmp_path / "cache"
    policy = InputPolicy()
    [a] = coding_cache.entry_paths(one, [image], folder, policy)
    [b] = coding_cache.entry_paths(two, [image], folder, policy)
    assert a != b
    (tmp_path / "copy" / "z").mkdir(parents=True)
    (tmp_path / "copy" / "z" / "renamed.png").write_bytes((one / "x" / "s0.png").read_bytes())
    [c] = coding_cache.entry_paths(tmp_path / "copy", [LabelledImage("z/renamed.png", 0)],
                                   folder, policy)
    assert c == a
    [d] = coding_cache.entry_paths(one, [image], folder, InputPolicy(256, "fit"))
    assert d != a
    ids = ({"spec": "neural-lossy", "model_hash": "aa"}, {"spec": "neural-lossy", "model_hash": "bb"})
    assert coding_cache.cache_folder(folder, ids[0]) != coding_cache.cache_folder(folder, ids[1])


def test_train_and_eval_on_another_folder_map_classes_by_name(tmp_path) -> None:
    data = _folder(tmp_path / "train", 6, classes=("0", "1", "2"))
    other = _folder(tmp_path / "other", 2, classes=("glioma", "pituitary"))
    model = tmp_path / "model"
    summary = train_analysis(
        data, model, extractor=FakeExtractor(), progress=False,
        budget=TrainConfig(epochs=2, batch_size=4), head_budget=HeadBudget(epochs=20),
        class_names="0=pituitary,1=meningioma,2=glioma", arch="stats-mlp",
    )
    assert summary.class_names == ("pituitary", "meningioma", "glioma")
    meta_split = load_split(model / "split.json")
    assert meta_split.input_policy == InputPolicy(512, "fit")
    same = evaluate_analysis(model, data, extractor=FakeExtractor(), progress=False,
                             timing_images=1)
    assert "patient IDs unknown" in same["caveat"]
    result = evaluate_analysis(model, other, extractor=FakeExtractor(), progress=False,
                               timing_images=1, out_dir=tmp_path / "ev")
    assert result["images"] == 4 and result["caveat"] == ""
    confusion = np.asarray(result["latent_classifier"]["confusion"])
    assert confusion.shape == (3, 3) and confusion[1].sum() == 0  # no meningioma folder
    assert confusion[0].sum() == 2 and confusion[2].sum() == 2
    assert json.loads((tmp_path / "ev" / "eval-test.json").read_text())["class_names"][0] == \
        "pituitary"


def test_cli_eval_on_another_folder_with_an_unknown_class_is_a_one_line_error(tmp_path) -> None:
    """`fedcodec analyze eval --data OTHER`: folders in another order and naming are mapped by
    class name (above); a class the model was not trained on is refused, naming the model's
    classes, before any coding."""
    data = _folder(tmp_path / "train", 4, classes=("0", "1", "2"))
    model = tmp_path / "model"
    train_analysis(data, model, extractor=FakeExtractor(), progress=False,
                   budget=TrainConfig(epochs=1, batch_size=4), head_budget=HeadBudget(epochs=10),
                   class_names="0=pituitary,1=meningioma,2=glioma", arch="stats-mlp")
    other = _folder(tmp_path / "other", 1, classes=("pituitary", "no tumour"))
    done = subprocess.run(
        [sys.executable, "-m", "fedcodec.client.cli", "analyze", "eval", "--model", str(model),
         "--data", str(other), "--quiet"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "no tumour" in line and "glioma" in line, line


def test_dicom_patient_ids_group_the_split(tmp_path) -> None:
    from fedcodec.client.demo.embedded_sites import write_stack_as_dicom
    from fedcodec.shared.sources import SliceStack

    for c, name in enumerate(("a", "b")):
        for p in range(4):
            volume = np.full((2, 16, 16), 100 * c + p, dtype=np.uint16)
            stack = SliceStack(f"{name}{p}", volume, 12, False, tmp_path, "x")
            write_stack_as_dicom(stack, tmp_path / "d" / name / f"p{p}", patient_id=f"{name}-{p}",
                                 description="x", max_slices=None)
    dataset = list_dataset(tmp_path / "d")
    assert dataset.patients_known and len(dataset.images) == 16
    split = split_dataset(tmp_path / "d", seed=0)
    assert split.grouped_by_patient
    owners = [{i.patient for i in split.part(p)} for p in ("train", "val", "test")]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])
