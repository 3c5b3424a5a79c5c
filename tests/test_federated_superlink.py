"""The coordinator's SuperLink wrapper: ``federation start`` in the foreground with a health
service, ``register`` twice (idempotent), ``status``, then SIGTERM to the wrapper stops the
SuperLink *and* the ``flower-superexec`` it detached. No training: about 15-30 s, mostly the
SuperLink's start-up."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedcodec.client.federated.supernode import create_node_keys
from fedcodec.server.federated import superlink
from fedcodec.server.federated.superlink import FederationDir, register_supernode, site_names
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.supervise import helpers_of

CLI = str(Path(sys.executable).parent / "fedcodec-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answer(monkeypatch, payload: dict) -> None:
    done = subprocess.CompletedProcess([], 1, stdout=json.dumps(payload), stderr="")
    monkeypatch.setattr(superlink.subprocess, "run", lambda *a, **k: done)


def test_register_reports_a_known_key_instead_of_failing(tmp_path, monkeypatch):
    key = tmp_path / "site.pub"
    key.write_text("ecdsa-sha2-nistp384 AAAA site")
    fed = FederationDir(tmp_path / "fed")
    _answer(monkeypatch, {"success": True, "node-id": "42"})
    assert register_supernode(fed, key) == f"{key}: SuperNode 42 registered successfully."
    assert site_names(fed) == {"42": "site"}  # the key file's name when --name is not given
    _answer(monkeypatch, {"success": False, "error-message":
                          "Using SuperLink: fedcodec (h:1)\n\n[code: 23] Public key already in use."})
    assert register_supernode(fed, key) == f"{key} is already registered (nothing to do)"
    _answer(monkeypatch, {"success": False, "error-message": "Using SuperLink\n\nconnection refused"})
    with pytest.raises(FedcodecError, match="^could not register .*: connection refused$"):
        register_supernode(fed, key)
    with pytest.raises(FedcodecError, match="no public key file"):
        register_supernode(fed, tmp_path / "missing.pub")


def _wait_listening(port: int, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    pytest.fail(f"nothing listens on {port} after {timeout}s")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.timeout(240)
def test_start_register_twice_status_and_sigterm_stops_every_helper(tmp_path):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port, health_port = _free_port(), _free_port()
    fed_dir = tmp_path / "fed"
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0",
               FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1")
    subprocess.run([CLI, "federation", "init", "--dir", str(fed_dir), "--address",
                    f"127.0.0.1:{port}"], check=True, env=env, capture_output=True, timeout=60)
    _, public = create_node_keys(tmp_path / "keys")
    wrapper = subprocess.Popen(
        [CLI, "federation", "start", "--dir", str(fed_dir), "--host", "127.0.0.1", "--port",
         str(port), "--health-address", f"127.0.0.1:{health_port}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    helpers: list[int] = []
    try:
        _wait_listening(port, wrapper)
        _wait_listening(health_port, wrapper)
        with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                              timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([CLI, "federation", *args, "--dir", str(fed_dir)], env=env,
                                  capture_output=True, text=True, timeout=120, check=False)

        first = cli("register", str(public), "--name", "st-a")
        assert first.returncode == 0, first.stdout + first.stderr
        assert re.fullmatch(rf"{re.escape(str(public))}: SuperNode \d+ registered successfully\.",
                            first.stdout.strip()), first.stdout
        again = cli("register", str(public), "--name", "st-a")
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.strip() == f"{public} is already registered (nothing to do)"
        status = cli("status")
        assert status.returncode == 0, status.stderr
        assert "SuperLink reachable" in status.stdout and "1 SuperNode(s)" in status.stdout
        assert "registered" in status.stdout
        assert re.search(r"^  st-a +node \d+ ", status.stdout, re.M), status.stdout  # its name

        helpers = helpers_of(wrapper.pid)  # the SuperLink and the superexec it detached
        names = [" ".join(Path(f"/proc/{p}/cmdline").read_text().split("\0")) for p in helpers]
        assert any("flower-superlink" in n for n in names), names
        assert any("flower-superexec" in n for n in names), names

        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=60) == 0, wrapper.stdout.read()
        output = wrapper.stdout.read()
        assert f"https://127.0.0.1:{port}" in output and f"127.0.0.1:{health_port}" in output
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in helpers if _alive(p)]
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # the port is free again
    finally:
        if wrapper.poll() is None:
            os.killpg(wrapper.pid, signal.SIGKILL)
            wrapper.wait(timeout=10)
        for pid in helpers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_status_without_a_superlink_is_one_line(tmp_path):
    port = _free_port()
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0")
    fed_dir = tmp_path / "fed"
    subprocess.run([CLI, "federation", "init", "--dir", str(fed_dir), "--address",
                    f"127.0.0.1:{port}"], check=True, env=env, capture_output=True, timeout=60)
    done = subprocess.run([CLI, "federation", "status", "--dir", str(fed_dir), "--timeout", "30"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "SuperLink" in done.stderr or "flwr supernode" in done.stderr


CHILD = """
import os, signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "--parent-pid",
                           str(os.getpid())], start_new_session=True)  # detached, as Flower does
print(helper.pid, flush=True)
time.sleep(120)
"""
DRIVER = """
import os, sys
from fedcodec.shared.supervise import run_supervised
sys.exit(run_supervised([sys.executable, "-c", sys.argv[1], sys.argv[2]], dict(os.environ), grace=2))
"""


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_supervisor_forwards_sigterm_and_stops_detached_helpers(mode):
    """What ``federation start`` and ``fedcodec join`` rely on, with stand-in processes: the child
    gets SIGTERM (SIGKILL after the grace period if it ignores it) and the helper it detached,
    which names it with ``--parent-pid``, is stopped too."""
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, CHILD, mode], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        helper = int(driver.stdout.readline())
        assert _alive(helper)
        time.sleep(0.5)
        driver.send_signal(signal.SIGTERM)
        code = driver.wait(timeout=30)
        assert code == (0 if mode == "polite" else 128 + signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(helper) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(helper)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
