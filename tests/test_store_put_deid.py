"""``fedcodec store put`` refuses a study whose DICOM headers were never de-identified.

The check reads every dataset of an ``.fcz`` container (or a DICOM file) for either PS3.15 mark,
PatientIdentityRemoved = YES or a De-identification Method; ``--allow-identified`` overrides it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.dicom.synthetic import make_mr, save
from pydicom.uid import generate_uid
from test_storage_support import make_federation, running_service

from fedcodec.client.cli import main
from fedcodec.client.compression import compress_study
from fedcodec.client.store.identified_study import identified_reason


def _study(folder: Path, *, deidentified: bool, marked: int | None = None) -> Path:
    """Two MR slices; ``marked`` = how many carry the de-identification marks (default all)."""
    folder.mkdir(parents=True)
    uid = generate_uid()
    rng = np.random.default_rng(3)
    count = 2 if marked is None else marked
    for i in range(2):
        ds = make_mr(rng.integers(0, 4096, (16, 16)).astype(np.uint16), series_uid=uid,
                     instance=i + 1, position=(0.0, 0.0, float(i)))
        ds.PatientName = "Doe^Jane"
        if deidentified and i < count:
            ds.PatientIdentityRemoved = "YES" if i == 0 else "NO"
            if i:
                ds.DeidentificationMethod = "PS3.15 Basic Profile"
        save(ds, folder / f"{i}.dcm")
    return folder


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("deid-put")
    out = {}
    for name, kwargs in (("identified", {"deidentified": False}),
                         ("deid", {"deidentified": True}),
                         ("half", {"deidentified": True, "marked": 1})):
        folder = _study(base / name, **kwargs)
        out[name] = base / f"{name}.fcz"
        compress_study(folder, out[name], mode="lossless", codec="zstd", progress=False)
        out[f"{name}.dcm"] = folder / "0.dcm"
    return out


def test_the_check_reads_every_dataset_of_a_container_or_a_dicom_file(studies, tmp_path) -> None:
    assert identified_reason(studies["deid"]) is None
    assert identified_reason(studies["deid.dcm"]) is None
    reason = identified_reason(studies["identified"])
    assert reason and "2 dataset(s) without PatientIdentityRemoved=YES" in reason
    half = identified_reason(studies["half"])
    assert half and "1 dataset(s)" in half
    assert "no PatientIdentityRemoved" in identified_reason(studies["identified.dcm"])
    renamed = tmp_path / "innocent.bin"  # the name does not matter, the magic bytes do
    shutil.copyfile(studies["identified"], renamed)
    assert identified_reason(renamed) is not None
    blob = tmp_path / "blob.fcz"
    blob.write_bytes(b"not a container at all")
    assert identified_reason(blob) is None


def test_put_refuses_an_identified_study_unless_allowed(studies, tmp_path: Path, capsys) -> None:
    fed = make_federation(tmp_path, ("a",))
    with running_service(fed, tmp_path / "root") as running:
        args = ["--service", f"127.0.0.1:{running.port}", "--tls-dir", str(fed.site_tls["a"]),
                "--keyring", str(fed.base / "keyring-a")]
        code = main(["store", "put", str(studies["identified"]), "--id", "s1", *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert "refusing to upload" in err[0] and "not de-identified" in err[0]
        assert "--allow-identified" in err[0]
        assert not list((tmp_path / "root" / "objects").rglob("s1"))
        assert main(["store", "put", str(studies["deid"]), "--id", "s2", *args]) == 0
        assert main(["store", "put", str(studies["identified"]), "--id", "s3",
                     "--allow-identified", *args]) == 0
