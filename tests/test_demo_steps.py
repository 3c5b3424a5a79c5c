"""The demo's machinery without the heavy steps: step selection, skipping by capability,
failures that stop their services, and the embedded sites' DICOM."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from fedcodec.client.demo.capabilities import codec_problem
from fedcodec.client.demo.context import (
    FAILED,
    OK,
    SKIPPED,
    DemoConfig,
    DemoContext,
    DemoStep,
    StepOutcome,
)
from fedcodec.client.demo.embedded_sites import DEMO_SITES, embedded_stack, write_site_folders
from fedcodec.client.demo.report import write_report
from fedcodec.client.demo.runner import run_step, select_steps
from fedcodec.client.demo.services import ServiceProcess
from fedcodec.client.demo.step_storage import plaintext_leaks
from fedcodec.shared.dicom import read_series
from fedcodec.shared.errors import FedcodecError
from rich.console import Console


def _ctx(tmp_path: Path) -> DemoContext:
    return DemoContext(DemoConfig(out_dir=tmp_path, quick=True, progress=False),
                       Console(file=io.StringIO(), width=120))


def test_select_steps_adds_prerequisites_in_demo_order():
    assert [s.name for s in select_steps(("storage",))] == ["data", "compress", "storage"]
    assert [s.name for s in select_steps(("analysis", "data"))] == ["data", "compress", "analysis"]
    assert len(select_steps(None)) == 6
    with pytest.raises(FedcodecError, match="unknown demo step 'nope'"):
        select_steps(("nope",))


def test_unavailable_component_is_skipped_and_reported(tmp_path):
    ctx = _ctx(tmp_path)
    ran = []
    step = DemoStep("federated", "Federated", lambda c: ran.append(1) or StepOutcome(OK, "x"),
                    lambda c: "federated training not available (flwr is not installed)")
    outcome = run_step(ctx, step, {})
    assert not ran and outcome.status == SKIPPED
    assert outcome.summary == "skipped: federated training not available (flwr is not installed)"
    assert outcome.summary in ctx.console.file.getvalue()
    report = write_report(ctx, [step], {"federated": outcome}, None).read_text()
    assert "## 1. Federated" in report and outcome.summary in report


def test_step_after_a_failed_step_is_skipped_not_run(tmp_path):
    ctx = _ctx(tmp_path)

    def broken(_ctx):
        raise FedcodecError("codec exploded")

    first = run_step(ctx, DemoStep("compress", "C", broken), {})
    assert first.status == FAILED and first.summary == "failed: codec exploded"
    second = run_step(ctx, DemoStep("storage", "S", lambda c: StepOutcome(OK, "x"),
                                    needs=("compress",)), {"compress": first})
    assert second.status == SKIPPED and "needs step compress, which failed" in second.summary


def test_service_that_cannot_start_leaves_no_process(tmp_path):
    empty_tls = tmp_path / "tls"
    empty_tls.mkdir()
    service = ServiceProcess("storage", ["storage", "serve", "--root", str(tmp_path / "root"),
                                         "--tls-dir", str(empty_tls), "--port", "0"],
                             tmp_path / "storage.log")
    with pytest.raises(FedcodecError, match="storage service exited at start: .*missing TLS"):
        service.start(timeout=60)
    assert not service.running() and service.process.returncode is not None


def test_site_folders_hold_the_embedded_pixels_exactly(tmp_path):
    folders = write_site_folders(tmp_path, max_slices=4)
    assert list(folders) == [s.name for s in DEMO_SITES]
    for site in DEMO_SITES:
        series, skipped = read_series(folders[site.name])
        expected = embedded_stack(site.package, site.relative_path).volume[:4]
        assert not skipped and len(series) == 1
        assert np.array_equal(series[0].volume.astype(np.int64), expected.astype(np.int64))
        assert series[0].patient_id == f"{site.name}-patient"


def test_plaintext_leak_scan_finds_a_copied_run(tmp_path):
    data = os.urandom(4096)
    (tmp_path / "cipher.bin").write_bytes(os.urandom(8192))
    assert plaintext_leaks(tmp_path, data) == []
    (tmp_path / "leak.bin").write_bytes(os.urandom(100) + data[1500:2500] + os.urandom(100))
    assert plaintext_leaks(tmp_path, data) == ["leak.bin"]


def test_codec_capability_check_names_the_problem():
    assert codec_problem("jpegls") is None
    assert codec_problem("no-such-codec") == "codec no-such-codec not available (not registered)"


def test_demo_help_lists_the_real_steps() -> None:
    """The step list in `fedcodec demo --help` (kept light on purpose) matches the runner."""
    from fedcodec.client.commands.demo import STEP_LIST
    from fedcodec.client.demo.runner import STEP_NAMES

    assert STEP_LIST.split(",") == list(STEP_NAMES)
