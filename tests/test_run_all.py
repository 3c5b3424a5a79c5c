"""``experiments/run_all``: runs chosen experiments as subprocesses and writes the index."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WRAPPER = REPO / "experiments" / "run_all"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(WRAPPER), *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, check=False)


def test_quick_storage_load_writes_its_outputs_and_the_index(tmp_path):
    done = _run("--quick", "--only", "storage_load,neural_speed", "--out", str(tmp_path),
                "--no-nice")
    assert done.returncode == 0, done.stderr + done.stdout
    index = (tmp_path / "INDEX.md").read_text()
    assert f"Machine: {os.cpu_count()} CPU (" in index and "GiB RAM" in index
    assert "experiments/storage_load.py --clients 4 --object-kib 64" in index
    assert "| storage_load | ok |" in index
    assert "| neural_speed | not run (no smoke variant (runs without --quick)) |" in index
    assert "- [storage_load/storage_load.json](storage_load/storage_load.json)" in index
    results = json.loads((tmp_path / "storage_load" / "storage_load.json").read_text())
    assert results  # the experiment's own numbers, written into its own folder
    recorded = json.loads((tmp_path / "index.json").read_text())
    assert recorded["quick"] is True and recorded["machine"]["nproc"] == str(os.cpu_count())
    assert [e["status"] for e in recorded["experiments"]] == ["ok", "not run"]


def test_failure_is_reported_and_sets_the_exit_code(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDCODEC_SHARED_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("FEDCODEC_REQUIRE_SHARED_DATA", "1")
    done = _run("--quick", "--only", "bench_shared", "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    index = (tmp_path / "out" / "INDEX.md").read_text()
    assert "| bench_shared | failed (shared data not found: " in index


def test_unknown_experiment_is_a_one_line_error(tmp_path):
    done = _run("--only", "nope", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == "run_all: error: unknown experiment 'nope'; see --list"
