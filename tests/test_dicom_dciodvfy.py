"""DICOM output adds no error to what David Clunie's validator ``dciodvfy`` reports for the input.

Lossless, near-lossless and lossy output of classic MR (Philips DWI, one file per slice) and
enhanced multi-frame MR (Philips field map, Siemens XA10), through the product's compress and
decompress. ``dciodvfy`` comes from Debian's ``dicom3tools`` (.ci/run installs it); without it
the test skips, or fails under ``FEDCODEC_REQUIRE_SHARED_DATA=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fedcodec.client.compression import compress_study, decompress_study
from tests.conftest import require_shared_data

CASES = {
    "classic": ("dicom-more", "philips-dwi", "cl", "DICOM"),
    "enhanced-philips": ("dicom-more", "enhanced", "Philips"),
    "enhanced-siemens": ("dicom-more", "enhanced", "Siemens", "XA10"),
}
FILES_PER_CASE = 3
"""The first files of a folder (classic: three slices of one series) keep the test short."""
MODES = {
    "lossless": {"mode": "lossless", "codec": "zstd"},
    "near-lossless": {"mode": "near-lossless", "tau": 2, "codec": "jpegls:tau=2"},
    "lossy": {"mode": "lossy", "codec": "neural:mode=lossy,max_error=8"},
}
"""The header path depends on the mode only, so the fastest codec of each mode stands in (the
lossy one is the default lossy coder, one pass at a fixed bound)."""


def _dciodvfy() -> str:
    found = shutil.which("dciodvfy")
    if found is None:
        message = "dciodvfy not installed (apt-get install dicom3tools)"
        if os.environ.get("FEDCODEC_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _errors(tool: str, files: list[Path]) -> set[str]:
    """Every distinct ``Error - ...`` line dciodvfy prints for ``files``."""
    found = set()
    for path in files:
        run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
        found |= {line.strip() for line in (run.stdout + run.stderr).splitlines()
                  if line.startswith("Error")}
    return found


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, parts in CASES.items():
        source = require_shared_data(*parts)
        folder = tmp_path_factory.mktemp(name)
        for path in sorted(p for p in source.iterdir() if p.is_file())[:FILES_PER_CASE]:
            shutil.copy(path, folder / path.name)
        out[name] = folder
    return out


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_output_adds_no_dciodvfy_error(inputs: dict[str, Path], tmp_path: Path, case: str,
                                       mode: str) -> None:
    tool = _dciodvfy()
    source = inputs[case]
    fcz = tmp_path / "s.fcz"
    compress_study(source, fcz, progress=False, **MODES[mode])  # type: ignore[arg-type]
    written = decompress_study(fcz, tmp_path / "out")
    before = _errors(tool, sorted(source.iterdir()))
    after = _errors(tool, written)
    assert after <= before, f"{case} {mode} output adds: {sorted(after - before)}"
