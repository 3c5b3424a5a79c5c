"""``fedcodec demo --quick`` end to end in a temporary folder, and what it must leave behind.

One quick run (module fixture) is shared by the checks: every step has its report section (ran
or said why it was skipped), services it started are stopped (process gone, port closed, no
child process left), the stored object is ciphertext that decrypts back to the container, and
the storage audit passes. Slow parts are real: a Flower simulation with Ray, TenSEAL contexts.
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest
from fedcodec.client.demo.context import OK, SKIPPED, DemoConfig
from fedcodec.client.demo.runner import STEP_NAMES, demo_steps, run_demo
from fedcodec.client.demo.step_storage import OBJECT_ID, OWNER, plaintext_probes
from fedcodec.server.audit.report import audit_storage
from fedcodec.shared.crypto import envelope
from fedcodec.shared.crypto.keyring import SiteKeyring
from rich.console import Console

# one worker runs every test here (``make test`` runs two): the module's demo run is built once
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("demo")]


def _children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    before = set(_children(os.getpid()))
    console = Console(file=io.StringIO(), width=120)
    run = run_demo(DemoConfig(out_dir=out, quick=True, progress=False), console)
    return run, out, before, console.file.getvalue()


@pytest.mark.slow(75)  # builds the module's demo run
def test_report_has_every_step_section(demo):
    run, out, _, printed = demo
    report = (out / "report.md").read_text()
    for number, step in enumerate(demo_steps(), 1):
        assert f"## {number}. {step.title}" in report, step.name
        outcome = run.outcomes[step.name]
        assert outcome.status in (OK, SKIPPED), f"{step.name}: {outcome.summary}"
        if outcome.status == SKIPPED:  # never fake output: the reason is printed and reported
            assert "not available" in outcome.summary or "needs step" in outcome.summary
            assert outcome.summary in report and outcome.summary in printed
    for name in ("data", "benchmark", "compress", "storage"):
        assert run.outcomes[name].status == OK, run.outcomes[name].summary
    for figure in (f for o in run.outcomes.values() for f in o.figures):
        assert figure.exists() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert os.path.relpath(figure, out) in report
    assert "mlflow ui --backend-store-uri sqlite:///" in report
    assert run.mlflow_run_id and run.mlflow_run_id in report
    assert (out / "mlflow.db").exists() and (out / "mlartifacts").is_dir()
    assert "fedcodec demo" in printed and set(STEP_NAMES) <= set(run.outcomes)


def test_services_are_stopped(demo):
    run, _, before, _ = demo
    services = run.results.get("services", [])
    assert {s.name for s in services} >= {"storage"}
    for service in services:
        assert service.port and not service.running()
        with socket.socket() as probe:
            probe.settimeout(1.0)
            assert probe.connect_ex(("127.0.0.1", service.port)) != 0, service.name
    assert set(_children(os.getpid())) <= before


def test_stored_object_is_ciphertext_that_decrypts_back(demo):
    run, out, _, _ = demo
    fcz: Path = run.results["stored_fcz"]
    plain = fcz.read_bytes()
    root = out / "storage"
    stored = root / "objects" / OWNER / OBJECT_ID
    blob = stored.read_bytes()
    assert len(blob) > len(plain)
    for path in (p for p in root.rglob("*") if p.is_file()):
        content = path.read_bytes()
        assert not any(probe in content for probe in plaintext_probes(plain)), path
    keyring = SiteKeyring.open(out / "keys" / OWNER)
    header, decrypted = envelope.decrypt_bytes(blob, keyring)
    assert decrypted == plain and header.site == OWNER
    assert run.results["fetched_fcz"].read_bytes() == plain
    assert oct((out / "keys").stat().st_mode & 0o777) == "0o700"
    assert oct((out / "keys" / OWNER).stat().st_mode & 0o777) == "0o700"


def test_storage_audit_passes(demo):
    _, out, _, _ = demo
    report = audit_storage(out / "storage")
    assert report.ok, report.problems
    assert report.objects_checked == 1 and report.chain.entries >= 2
