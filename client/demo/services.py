"""Local services for the demo: ``fedcodec-server`` commands as child processes on 127.0.0.1.

A site-side tool never imports the server's code (DESIGN.md, layering), so the demo runs the
real server CLI, the way an operator would: ``pki`` to make a throw-away CA and certificates,
``storage serve`` / ``analysis`` with ``--port 0`` (the service prints the port it got) and
``audit``. :class:`ServiceProcess` is a context manager: leaving the block (normally, on an
error or on Ctrl-C) sends SIGTERM, waits, and kills if it must, so no service outlives a step.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from fedcodec.shared.errors import FedcodecError

LISTENING = re.compile(r"listening on [^\s:]+:(\d+)")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0


def server_command() -> list[str]:
    """How to run ``fedcodec-server`` from this interpreter's environment."""
    script = Path(sys.executable).with_name("fedcodec-server")
    if script.exists():
        return [str(script)]
    found = shutil.which("fedcodec-server")
    if found:
        return [found]
    return [sys.executable, "-m", "fedcodec.server.cli"]


def quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0",
                "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"})
    return env


def run_server_cli(args: Sequence[str], *, timeout: float = 300.0) -> str:
    """Run one ``fedcodec-server`` command to completion; its stdout, or a one-line error."""
    try:
        done = subprocess.run([*server_command(), *args], capture_output=True, text=True,
                              timeout=timeout, env=quiet_env(), check=False)
    except subprocess.TimeoutExpired:
        raise FedcodecError(f"fedcodec-server {args[0]} took over {timeout:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["?"])[-1]
        raise FedcodecError(f"fedcodec-server {' '.join(args[:2])} failed: {last}")
    return done.stdout


class ServiceProcess:
    """One long-running ``fedcodec-server`` service; ``port`` is known once started."""

    def __init__(self, name: str, args: Sequence[str], log_file: Path) -> None:
        self.name = name
        self.args = list(args)
        self.log_file = Path(log_file)
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = START_TIMEOUT) -> ServiceProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [*server_command(), *self.args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=quiet_env(), start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"{self.name}-log")
        self._reader.start()
        deadline = time.monotonic() + timeout
        try:
            while not self.port:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FedcodecError(f"{self.name} service did not start in {timeout:.0f} s "
                                        f"(log: {self.log_file})")
                try:
                    line = self._lines.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    raise FedcodecError(f"{self.name} service exited at start: "
                                        f"{self._last_log_line()} (log: {self.log_file})")
                match = LISTENING.search(line)
                if match:
                    self.port = int(match.group(1))
        except BaseException:
            self.stop()
            raise
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with self.log_file.open("a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self._lines.put(line)
        self._lines.put(None)

    def _last_log_line(self) -> str:
        if self._reader:
            self._reader.join(timeout=2)
        lines = self.log_file.read_text().strip().splitlines() if self.log_file.exists() else []
        return lines[-1] if lines else "no output"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (the services stop gracefully on it), then SIGKILL after a grace period."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        if self._reader:
            self._reader.join(timeout=5)
        if process.stdout:
            process.stdout.close()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def make_demo_pki(pki_dir: Path, sites: Sequence[str]) -> dict[str, Path]:
    """A throw-away CA, the services' TLS folder and one TLS folder per site.

    Returns ``{"ca": ..., "server": ..., site: ...}`` folders. Existing demo certificates are
    replaced (``--force``): they belong to this output folder only.
    """
    ca, server = pki_dir / "ca", pki_dir / "server"
    run_server_cli(["pki", "init-ca", "--ca-dir", str(ca), "--name", "fedcodec demo CA",
                    "--days", "30", "--force"])
    run_server_cli(["pki", "issue-server", "--ca-dir", str(ca), "--out", str(server),
                    "--ip", "127.0.0.1", "--host", "localhost", "--days", "30", "--force"])
    folders = {"ca": ca, "server": server}
    for site in sites:
        folders[site] = pki_dir / site
        run_server_cli(["pki", "issue-site", site, "--ca-dir", str(ca), "--out",
                        str(folders[site]), "--days", "30", "--force"])
    return folders
