"""Test data resolved by name, and the shared-data rule.

Tests that need ``../shared/data`` take the ``shared_data`` fixture (a Path). When the folder is
missing they skip, except under ``FEDCODEC_REQUIRE_SHARED_DATA=1`` (set by ``.ci/run``), where they
fail: CI must never pass by skipping the real-data tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FEDCODEC_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"

for _name, _value in {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}.items():
    os.environ.setdefault(_name, _value)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "FEDCODEC_NEURAL_BLAS_THREADS", "FEDCODEC_NEURAL_THREADS")


def run_with_threads(script: str, args: list[str], threads: int) -> None:
    """Run ``python -c script *args`` in a fresh process with every thread knob at ``threads``:
    the bit-exactness tests encode in one process and decode in another with other threads."""
    import subprocess
    import sys

    env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
    result = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def require_shared_data(*parts: str) -> Path:
    """The path under ``../shared/data``; skip if absent, fail if CI requires it."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"shared data not found: {path}"
        if os.environ.get("FEDCODEC_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message + " (FEDCODEC_REQUIRE_SHARED_DATA=1)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ``../shared/data``."""
    return require_shared_data()


@pytest.fixture(autouse=True)
def _private_site_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Each test keeps `fedcodec store` receipts in its own folder, never in ~/.fedcodec, and
    Flower's FLWR_HOME in its own folder too, so tests running side by side (``make test``
    runs two at a time) never share Flower's configuration or logs."""
    monkeypatch.setenv("FEDCODEC_STATE_DIR", str(tmp_path_factory.mktemp("site-state")))
    monkeypatch.setenv("FLWR_HOME", str(tmp_path_factory.mktemp("flwr-home")))


def _slow_seconds(item: pytest.Item) -> float:
    mark = item.get_closest_marker("slow")
    return float(mark.args[0]) if mark and mark.args else 0.0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest test files first when ``make test`` runs the suite on pytest-xdist workers.

    ``make test`` hands tests to two workers one at a time (``--dist loadgroup``) in collection
    order; the tests of an ``xdist_group`` go together to one worker (:func:`_name_group`).
    Test files are ordered by the sum of their tests' ``slow(seconds)`` marks, heaviest first
    (a file's tests stay together, in their own order), so the role guides and the federations
    start at once and no worker begins a five-minute test when the other is nearly done. A run
    without workers keeps pytest's own order.
    """
    if not hasattr(config, "workerinput"):
        return
    weight: dict[str, float] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        path = item.nodeid.split("::")[0]
        weight[path] = weight.get(path, 0.0) + _slow_seconds(item)
        first.setdefault(path, index)
    order = {id(item): index for index, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[float, int, int]:
        path = item.nodeid.split("::")[0]
        return (-weight[path], first[path], order[id(item)])

    items.sort(key=key)
    if config.getvalue("loadgroup"):
        for item in items:
            _name_group(item)


def _name_group(item: pytest.Item) -> None:
    """Give a test of an ``xdist_group`` the ``@group`` nodeid suffix that ``--dist loadgroup``
    schedules by, so its group runs on one worker (the demo's module fixture is then built once,
    not once per worker). pytest-xdist 3.8 writes the suffix to ``item._nodeid``, which pytest 9
    no longer reads (it reads ``item._id``); this writes it where pytest 9 reads it."""
    from _pytest.nodeid import NodeId

    groups = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                     for mark in item.iter_markers("xdist_group")})
    if groups and "@" not in item.nodeid and hasattr(item, "_id"):
        item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")
