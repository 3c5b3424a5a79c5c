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


def _unit(item: pytest.Item) -> str:
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Units of work for ``make test`` (pytest-xdist, ``--dist loadgroup``), longest first.

    A test file is one unit by default: its module fixtures (a demo run, a trained model, a
    moto server) are built once, on one worker. A test marked ``xdist_group`` is a unit of its
    own (the three guides run side by side). Inside a worker the units are ordered by their
    ``slow(seconds)`` marks, longest first, so no worker starts a five-minute guide when the
    other is nearly done. A run without workers keeps pytest's own order.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
    if not hasattr(config, "workerinput"):
        return
    unit_of = {id(item): _unit(item) for item in items}
    weight: dict[str, float] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        unit = unit_of[id(item)]
        weight[unit] = weight.get(unit, 0.0) + _slow_seconds(item)
        first.setdefault(unit, index)
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (-weight[unit_of[id(item)]], first[unit_of[id(item)]],
                                 order[id(item)]))
