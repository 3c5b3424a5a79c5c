"""``fedcodec compress`` on a research image folder: one verified .fcz per PNG/JPEG/NIfTI file."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import nibabel as nib
import numpy as np
import pydicom

from fedcodec.client.cli import main


def _folder(root: Path) -> dict[str, np.ndarray]:
    (root / "glioma").mkdir(parents=True)
    picture = (np.arange(40 * 24) % 3000).reshape(40, 24).astype(np.uint16)
    imagecodecs.imwrite(str(root / "glioma" / "a.png"), picture)
    volume = (np.arange(16 * 12 * 3) % 500).reshape(16, 12, 3).astype(np.int16)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), root / "vol.nii.gz")
    (root / "notes.txt").write_text("not an image")
    return {"glioma/a.png": picture[None], "vol.nii.gz": volume.transpose(2, 1, 0)}


def test_image_folder_gives_one_container_per_file(tmp_path, capsys) -> None:
    expected = _folder(tmp_path / "images")
    out = tmp_path / "out"
    assert main(["compress", str(tmp_path / "images"), "-o", str(out), "--codec", "jpegls",
                 "--quiet"]) == 0
    assert "wrote 2 containers" in capsys.readouterr().out
    for name, pixels in expected.items():
        back = tmp_path / f"back-{Path(name).name}"
        assert main(["decompress", str(out / f"{name}.fcz"), "-o", str(back), "--quiet"]) == 0
        files = sorted(back.rglob("*.dcm"))
        restored = np.stack([pydicom.dcmread(f).pixel_array for f in files])
        np.testing.assert_array_equal(restored, pixels)


def test_colour_picture_is_refused_before_anything_is_written(tmp_path, capsys) -> None:
    _folder(tmp_path / "images")
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    imagecodecs.imwrite(str(tmp_path / "images" / "zz.png"), colour)
    assert main(["compress", str(tmp_path / "images"), "-o", str(tmp_path / "out"),
                 "--codec", "jpegls", "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "colour picture" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
