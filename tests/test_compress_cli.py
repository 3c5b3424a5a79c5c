"""`fedcodec compress / decompress / inspect` from the command line: results and error paths.

Every bad input must give exactly one line on stderr, a non-zero exit, no traceback, and no
output left behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from fedcodec.client.cli import main

PYDICOM_DATA = Path(pydicom.__file__).parents[1] / "data_store" / "data"


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    """A one-series study folder: pydicom-data's 10-frame 64x64 12-bit MR, plus a stray note."""
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(PYDICOM_DATA / "emri_small.dcm", folder / "emri_small.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    return folder


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, expected: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fedcodec: error: "), err
    assert expected in lines[0], err


def test_compress_inspect_decompress(study: Path, tmp_path: Path, capsys) -> None:
    fcz = tmp_path / "s.fcz"
    code, out, _ = _run(capsys, "compress", str(study), "-o", str(fcz), "--quiet")
    assert code == 0
    assert f"wrote {fcz}: 1 series, 10 slices, codec neural (lossless, verified bit-exact)" in out
    assert "ratio" in out and "bpp" in out
    assert "skipped 1 file(s) with no image to archive; first: notes.txt" in out

    code, out, _ = _run(capsys, "inspect", str(fcz), "--verify")
    assert code == 0
    assert ".fcz version 1" in out and "all checksums verified" in out
    assert "codec neural (lossless)" in out
    assert "10x64x64" in out

    code, out, _ = _run(capsys, "inspect", str(fcz), "--json")
    summary = json.loads(out)
    assert summary["codec_spec"] == "neural" and summary["mode"] == "lossless"
    assert summary["size"] == fcz.stat().st_size
    assert summary["series"][0]["shape"] == [10, 64, 64]

    target = tmp_path / "out"
    code, out, _ = _run(capsys, "decompress", str(fcz), "-o", str(target), "--quiet")
    assert code == 0
    files = sorted(target.rglob("*.dcm"))
    assert files and f"wrote {len(files)} DICOM files in 1 series folders" in out


def test_compress_near_lossless_reports_the_bound(study: Path, tmp_path: Path, capsys) -> None:
    fcz = tmp_path / "n.fcz"
    code, out, _ = _run(
        capsys, "compress", str(study), "-o", str(fcz), "--mode", "near-lossless", "--tau", "3",
        "--quiet",
    )
    assert code == 0
    assert "codec neural:tau=3 (near-lossless, verified max error" in out
    assert "<= tau 3" in out


def test_missing_study_dir(tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "compress", str(tmp_path / "nope"), "-o", str(tmp_path / "x.fcz"))
    _assert_one_line_error(code, err, "no such folder")
    assert not (tmp_path / "x.fcz").exists()


def test_empty_study_dir(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, "compress", str(empty), "-o", str(tmp_path / "x.fcz"))
    _assert_one_line_error(code, err, str(empty))
    assert not (tmp_path / "x.fcz").exists()


def test_study_without_dicom(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    code, _, err = _run(capsys, "compress", str(folder), "-o", str(tmp_path / "x.fcz"))
    _assert_one_line_error(code, err, "no DICOM")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--codec", "nosuchcodec"], "unknown codec 'nosuchcodec'"),
        (["--codec", "j2k:ratio=9"], "lossless mode needs a lossless codec"),
        (["--mode", "near-lossless"], "needs --tau N with N >= 1"),
        (["--mode", "near-lossless", "--tau", "1", "--codec", "jpegls:tau=4"], "more than --tau 1"),
        (["--tau", "2"], "--tau only applies to near-lossless"),
        (["--quality", "50"], "--quality only applies to lossy"),
        (["--mode", "lossy", "--quality", "101"], "--quality must be 1..100"),
    ],
)
def test_option_errors(
    study: Path, tmp_path: Path, capsys, extra: list[str], expected: str
) -> None:
    code, _, err = _run(capsys, "compress", str(study), "-o", str(tmp_path / "x.fcz"), *extra)
    _assert_one_line_error(code, err, expected)
    assert not (tmp_path / "x.fcz").exists()


def test_existing_output_needs_force(study: Path, tmp_path: Path, capsys) -> None:
    fcz = tmp_path / "s.fcz"
    fcz.write_bytes(b"keep me")
    code, _, err = _run(capsys, "compress", str(study), "-o", str(fcz), "--quiet")
    _assert_one_line_error(code, err, "exists; use --force")
    assert fcz.read_bytes() == b"keep me"
    code, _, _ = _run(capsys, "compress", str(study), "-o", str(fcz), "--quiet", "--force")
    assert code == 0 and fcz.read_bytes()[:4] == b"\x89FCZ"


@pytest.fixture()
def fcz(study: Path, tmp_path: Path, capsys) -> Path:
    path = tmp_path / "good.fcz"
    assert main(["compress", str(study), "-o", str(path), "--quiet", "--codec", "zstd"]) == 0
    capsys.readouterr()
    return path


@pytest.mark.parametrize("command", ["decompress", "inspect"])
def test_corrupt_container(fcz: Path, tmp_path: Path, capsys, command: str) -> None:
    data = fcz.read_bytes()
    cases = {
        "truncated.fcz": (data[: len(data) // 2], "truncated at byte"),
        "text.fcz": (b"just some text\n", "not an .fcz file"),
        "flipped.fcz": (data[:-40] + bytes([data[-40] ^ 0x55]) + data[-39:], "checksum mismatch"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        target = tmp_path / f"out-{name}"
        extra = ["-o", str(target)] if command == "decompress" else ["--verify"]
        code, _, err = _run(capsys, command, str(path), *extra)
        _assert_one_line_error(code, err, expected)
        assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_decompress_missing_file_and_busy_target(fcz: Path, tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "decompress", str(tmp_path / "none.fcz"), "-o", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "no such file")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    code, _, err = _run(capsys, "decompress", str(fcz), "-o", str(busy))
    _assert_one_line_error(code, err, "exists and is not an empty folder")
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]


def test_real_entry_point_prints_one_line(tmp_path: Path) -> None:
    """The installed console path, in a fresh interpreter: no traceback, exit code 2."""
    bad = tmp_path / "bad.fcz"
    bad.write_bytes(b"\x89FCZ\r\n\x1a\n\x07\x00" + b"\0" * 40)
    result = subprocess.run(
        [sys.executable, "-m", "fedcodec.client.cli", "inspect", str(bad)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "fedcodec: error: unsupported .fcz version 7 (this fedcodec reads versions 1, 2)"
    )


@pytest.mark.parametrize("damage", ["pixels cut short", "header cut short"])
def test_an_unreadable_image_stops_compress_unless_skipped(study: Path, tmp_path: Path, capsys,
                                                           damage: str) -> None:
    """A damaged image among a study's files would be missing from the archive: one-line error,
    no output; ``--skip-unreadable`` archives the rest and says what it left out."""
    whole = (study / "emri_small.dcm").read_bytes()
    keep = len(whole) - 3000 if damage == "pixels cut short" else 300
    (study / "damaged.dcm").write_bytes(whole[:keep])
    fcz = tmp_path / "s.fcz"
    code, _, err = _run(capsys, "compress", str(study), "-o", str(fcz), "--quiet")
    _assert_one_line_error(code, err, "1 image file(s) under")
    assert "damaged.dcm" in err and "--skip-unreadable" in err
    assert not fcz.exists()
    code, out, _ = _run(capsys, "compress", str(study), "-o", str(fcz), "--quiet",
                        "--skip-unreadable")
    assert code == 0 and fcz.exists()
    assert "NOT ARCHIVED (--skip-unreadable): 1 image file(s) that cannot be read; first: " \
           "damaged.dcm" in out
    assert "skipped 1 file(s) with no image to archive; first: notes.txt" in out


def test_an_error_is_the_first_and_only_line_on_a_pipe(tmp_path: Path) -> None:
    """Without --quiet and without a terminal, no progress residue (a blank line) comes first."""
    (tmp_path / "notes.txt").write_text("not DICOM")
    fedcodec = Path(sys.executable).with_name("fedcodec")
    done = subprocess.run([str(fedcodec), "compress", str(tmp_path), "-o",
                           str(tmp_path / "x.fcz")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("fedcodec: error: no DICOM images in ")
    assert done.stderr.count("\n") == 1
