"""``fedcodec bench``: bad input gives one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, require_shared_data
from fedcodec.client.cli import main
from fedcodec.shared.codecs import base as codec_base
from fedcodec.shared.codecs import codec_names
from fedcodec.shared.errors import CorruptDataError

FEDCODEC = Path(sys.executable).with_name("fedcodec")


def _one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert lines[0].startswith("fedcodec: error: ")
    return lines[0]


@pytest.fixture()
def small_npy(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:40, 0:48]
    volume = np.stack([(x * 37 + y * 11 + 5 * i) % 1024 for i in range(2)]).astype(np.uint16)
    np.save(tmp_path / "small.npy", volume)
    return tmp_path / "small.npy"


def test_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = _one_error_line(capsys, main(["bench", str(tmp_path / "absent")]))
    assert line.endswith(f"no such file or folder: {tmp_path / 'absent'}")


def test_empty_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = _one_error_line(capsys, main(["bench", str(tmp_path)]))
    assert line.endswith(f"folder is empty: {tmp_path}")


def test_unknown_codec(capsys: pytest.CaptureFixture[str], small_npy: Path) -> None:
    line = _one_error_line(capsys, main(["bench", str(small_npy), "--codecs", "jpegls", "nope"]))
    assert "unknown codec 'nope'; known: " in line and "jpegls" in line


def test_corrupt_npy(capsys: pytest.CaptureFixture[str], small_npy: Path) -> None:
    small_npy.write_bytes(small_npy.read_bytes()[:150])
    line = _one_error_line(capsys, main(["bench", str(small_npy)]))
    assert f"cannot read .npy file {small_npy}" in line


def test_no_path_without_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert "bench needs a PATH" in _one_error_line(capsys, main(["bench"]))


def test_bad_slice_limit(capsys: pytest.CaptureFixture[str], small_npy: Path) -> None:
    line = _one_error_line(capsys, main(["bench", str(small_npy), "--max-slices", "0"]))
    assert line.endswith("slice limit must be at least 1, got 0")


def test_corrupt_bitstream_names_codec_and_slice(
    capsys: pytest.CaptureFixture[str], small_npy: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A codec whose decoder rejects its own stream stops the run with one line."""

    class TruncatingCodec(codec_base.Codec):
        name = "test-truncating"

        def encode(self, image: np.ndarray, bits: int) -> bytes:
            return codec_base.get_codec("jpegls").encode(image, bits)[:-40]

        def decode(self, data: bytes) -> np.ndarray:
            return codec_base.get_codec("jpegls").decode(data)

    monkeypatch.setitem(codec_base._REGISTRY, TruncatingCodec.name, TruncatingCodec)
    code = main(["bench", str(small_npy), "--codecs", "test-truncating", "--quiet",
                 "--out", str(tmp_path / "out")])
    line = _one_error_line(capsys, code)
    assert "codec 'test-truncating' failed to decode small.npy/0" in line
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(CorruptDataError):
        codec_base.get_codec("jpegls").decode(b"\xff\xd8garbage")


def test_list_prints_codec_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == codec_names()
    assert {"jpegls", "j2k", "htj2k", "jxl", "zstd"} <= set(out.split())


def test_bench_npy_writes_results(
    capsys: pytest.CaptureFixture[str], small_npy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = main(["bench", str(small_npy), "--codecs", "jpegls", "jpegls:tau=2", "j2k:ratio=16",
                 "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "jpegls:tau=2" in printed and "wall time" in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["slices"] == 2 and len(doc["records"]) == 6
    jpegls, near, lossy = doc["summary"]
    assert (jpegls["lossless"], jpegls["max_abs_error"], jpegls["psnr"]) == (True, 0, None)
    assert near["max_error_bound"] == 2 and 0 < near["max_abs_error"] <= 2
    assert lossy["max_error_bound"] is None and lossy["bpp"] < jpegls["bpp"]


def test_bench_with_lossy_adds_the_default_lossy_codec(
    capsys: pytest.CaptureFixture[str], small_npy: Path, tmp_path: Path
) -> None:
    """``--with-lossy`` adds the classical RD points and the rate-controlled neural points; each
    neural point meets its PSNR target on every slice and states its bound."""
    out = tmp_path / "out"
    assert main(["bench", str(small_npy), "--codecs", "jpegls", "--with-lossy",
                 "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    doc = json.loads((out / "results.json").read_text())
    summaries = {s["codec"]: s for s in doc["summary"]}
    assert {"j2k:ratio=16", "jxl:distance=1"} <= set(summaries)
    for target in (45, 50, 55):
        point = summaries[f"neural:mode=lossy,psnr={target}"]
        assert point["max_abs_error"] <= point["max_error_bound"]
    psnr = {(r["codec"], r["slice_id"]): r["psnr"] for r in doc["records"]}
    assert all(p is None or p >= 45 for (c, _), p in psnr.items() if c.endswith("psnr=45"))


def test_console_script_has_no_traceback(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: exit code 2 and one stderr line."""
    proc = subprocess.run([str(FEDCODEC), "bench", str(tmp_path / "absent")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"fedcodec: error: no such file or folder: {tmp_path / 'absent'}"
    ]


def test_bench_on_real_dicom_series(tmp_path: Path) -> None:
    """10 of the 14 slices of a real GE DWI series (signed 16-bit), default codecs, as run."""
    series = require_shared_data("dicom", "ge", "In", "01_Ax_DWI_TENSOR_R2")
    out = tmp_path / "bench"
    proc = subprocess.run(
        [str(FEDCODEC), "bench", str(series), "--max-slices", "10", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["slices"] == 10 and doc["pixels"] == 10 * 256 * 256
    codecs = [s["codec"] for s in doc["summary"]]
    assert codecs == ["jxl", "j2k", "jpegls", "htj2k", "jpegls:tau=2", "zstd"]
    assert len(doc["records"]) == len(codecs) * doc["slices"]
    for summary in doc["summary"]:
        assert summary["max_abs_error"] <= (2 if summary["codec"] == "jpegls:tau=2" else 0)
        assert 0 < summary["bpp"] < 16
    assert (out / "rd_psnr.png").exists() and (out / "results.csv").exists()


def test_output_piped_into_head_stops_quietly() -> None:
    """``fedcodec ... | head``: the reader closes the pipe early; no error line, no traceback."""
    script = (
        "import argparse, sys\n"
        "from fedcodec.shared.cli_runner import run_cli\n"
        "parser = argparse.ArgumentParser(prog='fedcodec')\n"
        "parser.add_argument('--debug', action='store_true')\n"
        "def spill(args):\n"
        "    for i in range(200000):\n"
        "        print('line', i)\n"
        "parser.set_defaults(func=spill)\n"
        "sys.exit(run_cli(parser, []))\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"line 0\n"
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert err == ""
    assert code == 141


def test_long_error_line_keeps_its_remedy(capsys: pytest.CaptureFixture[str]) -> None:
    """A message naming deep paths (a key file and its ``chmod``) is printed whole."""
    import argparse

    from fedcodec.shared.cli_runner import run_cli
    from fedcodec.shared.errors import FedcodecError

    deep = "/srv/site/" + "nested-folder/" * 40 + "server.key"
    parser = argparse.ArgumentParser(prog="fedcodec")
    parser.add_argument("--debug", action="store_true")

    def fail(args: argparse.Namespace) -> None:
        raise FedcodecError(f"refusing to use TLS private key {deep}: run: chmod 600 {deep}")

    parser.set_defaults(func=fail)
    assert run_cli(parser, []) != 0
    assert _one_error_line(capsys, 1).endswith(f"chmod 600 {deep}")


@pytest.mark.parametrize("quiet", [False, True])
def test_library_warnings_are_one_line_each_and_gone_with_quiet(quiet: bool) -> None:
    """A pydicom-style warning prints as one ``fedcodec: warning:`` line, once per message, not
    Python's two lines naming library source; ``--quiet`` drops it."""
    script = (
        "import argparse, sys, warnings\n"
        "from fedcodec.shared.cli_runner import run_cli\n"
        "parser = argparse.ArgumentParser(prog='fedcodec')\n"
        "parser.add_argument('--debug', action='store_true')\n"
        "parser.add_argument('--quiet', action='store_true')\n"
        "def warn(args):\n"
        "    for _ in range(3):\n"
        "        warnings.warn('The value length (20) exceeds 16 for VR SH.\\nmore', UserWarning)\n"
        "    print('done')\n"
        "parser.set_defaults(func=warn)\n"
        f"sys.exit(run_cli(parser, {['--quiet'] if quiet else []!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout == "done\n"
    expected = "" if quiet else "fedcodec: warning: The value length (20) exceeds 16 for VR SH.\n"
    assert done.stderr == expected


def test_a_command_imports_only_its_own_module(tmp_path):
    """`fedcodec keys list` must not pay for the codecs, scipy and torch (~2 s) before it runs;
    help and a mistyped command still see every command."""
    probe = ("import sys\nfrom fedcodec.client.cli import main\n"
             "code = main(['keys', 'list', '--site', 'nobody'])\n"
             "heavy = [m for m in ('scipy', 'torch', 'fedcodec.shared.benchmark',"
             " 'fedcodec.client.commands.bench') if m in sys.modules]\n"
             "print(code, heavy)\n")
    env = {**os.environ, "FEDCODEC_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.strip() == "2 []", done.stdout + done.stderr
    assert "no keyring" in done.stderr
    typo = subprocess.run([sys.executable, "-m", "fedcodec.client.cli", "compres"],
                          capture_output=True, text=True, env=env, check=False)
    assert typo.returncode == 2 and "'compress'" in typo.stderr and "'store'" in typo.stderr


def test_sigterm_unwinds_like_ctrl_c_and_stops_the_workers(tmp_path: Path) -> None:
    """``kill`` (SIGTERM) during work on worker processes: one line, exit 143, and no worker left
    running (they used to outlive the command, still coding, for minutes)."""
    pids = tmp_path / "pids.txt"
    script = (
        "import argparse, os, signal, sys, threading, time\n"
        "from fedcodec.shared.cli_runner import run_cli\n"
        "from fedcodec.shared.neural.chains import run_jobs\n"
        "def slow(i):\n"
        f"    with open({str(pids)!r}, 'a') as f: f.write(f'{{os.getpid()}}\\n')\n"
        "    time.sleep(120)\n"
        "parser = argparse.ArgumentParser(prog='fedcodec')\n"
        "parser.add_argument('--debug', action='store_true')\n"
        "def work(args):\n"
        "    threading.Timer(3, os.kill, (os.getpid(), signal.SIGTERM)).start()\n"
        "    run_jobs(slow, [(0,), (1,)], [1 << 20, 1 << 20])\n"
        "parser.set_defaults(func=work)\n"
        "sys.exit(run_cli(parser, []))\n"
    )
    env = {**os.environ, "FEDCODEC_NEURAL_WORKERS": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=env)
    assert (done.returncode, done.stderr) == (143, "fedcodec: terminated\n")
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) == 2
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower()
