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
    """Each test keeps `fedcodec store` receipts in its own folder, never in ~/.fedcodec."""
    monkeypatch.setenv("FEDCODEC_STATE_DIR", str(tmp_path_factory.mktemp("site-state")))
