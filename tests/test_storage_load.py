"""Must-show (light): 50 concurrent clients put and get encrypted objects with zero errors.

Runs the very command the heavy measurement uses (experiments/storage_load.py), scaled down to
50 x 256 KiB so it stays within seconds; the heavy run is
``nice -n 10 .venv/bin/python experiments/storage_load.py --clients 50 --object-kib 4096``.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

CLIENTS = 50
OBJECT_KIB = 256


def test_fifty_concurrent_clients_without_errors() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "storage_load.py"),
         "--clients", str(CLIENTS), "--object-kib", str(OBJECT_KIB), "--json", "-"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["errors"] == []
    assert results["stored_objects"] == CLIENTS
    phases = {p["phase"]: p for p in results["phases"]}
    assert set(phases) == {"plain file copy (fsync)", "encrypted put", "encrypted get"}
    for phase in phases.values():
        assert phase["errors"] == 0 and phase["mb_per_s"] > 0
    print("\n" + "\n".join(f"{name}: {p['mb_per_s']} MB/s" for name, p in phases.items()))
