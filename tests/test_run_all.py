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
    assert [(e["name"], e["status"]) for e in recorded["experiments"]] == [
        ("neural_speed", "not run"), ("storage_load", "ok")]  # in the order of the list


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


def test_rerunning_one_experiment_keeps_the_rest_of_the_index(tmp_path):
    first = _run("--quick", "--only", "privacy_plan,envelope_speed", "--out", str(tmp_path),
                 "--no-nice")
    assert first.returncode == 0, first.stderr + first.stdout
    before = json.loads((tmp_path / "index.json").read_text())["experiments"]
    again = _run("--quick", "--only", "privacy_plan", "--out", str(tmp_path), "--no-nice")
    assert again.returncode == 0, again.stderr + again.stdout
    after = json.loads((tmp_path / "index.json").read_text())["experiments"]
    assert [e["name"] for e in after] == ["envelope_speed", "privacy_plan"]  # list order
    assert after[0] == next(e for e in before if e["name"] == "envelope_speed")  # kept as it was
    assert all(e["status"] == "ok" and e["finished"] and e["commit"] for e in after)
    printed = (tmp_path / "privacy_plan" / "stdout.txt").read_text()
    assert "2,000" in printed and "7.239" in printed  # the README's row
    assert (tmp_path / "privacy_plan" / "privacy_plan.png").stat().st_size > 0
    speed = json.loads((tmp_path / "envelope_speed" / "envelope_speed.json").read_text())
    assert speed["encrypt_mb_s_best"] > 0 and speed["decrypt_mb_s_best"] > 0
    index = (tmp_path / "INDEX.md").read_text()
    assert "| privacy_plan | ok |" in index and "| envelope_speed | ok |" in index
