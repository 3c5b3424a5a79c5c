"""Run a Flower daemon (SuperLink, SuperNode) in the foreground; stop it and its helpers cleanly.

Why: ``flower-superlink`` starts ``flower-superexec`` in a *new session* (so a terminal's Ctrl-C
never reaches it), and the superexec starts ``flwr-serverapp`` processes the same way; a
SuperNode's superexec and ClientApp processes are tied to it only by ``--parent-pid``. A plain
``subprocess.call`` wrapper that is killed leaves all of them running, holding ports and
databases. Here SIGTERM/SIGINT/SIGHUP sent to the wrapper are forwarded to the child as SIGTERM
(its own shutdown then stops its superexec), and after it exited any helper still running that
names it (or one of its helpers) as ``--parent-pid`` is terminated too. The child stays in the
wrapper's process group, so whoever kills that group (a terminal's Ctrl-C, a test harness,
``kill -- -PGID``) still reaches it directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def helpers_of(root_pid: int) -> list[int]:
    """PIDs of processes started for ``root_pid``: Flower passes ``--parent-pid <pid>`` to the
    helpers it detaches, so follow that chain (and ordinary parent links) from ``root_pid``."""
    if not Path("/proc").is_dir():
        return []
    table: dict[int, tuple[int, list[str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        table[pid] = (ppid, _cmdline(pid))
    found: list[int] = []
    frontier = {root_pid}
    while frontier:
        nxt = set()
        for pid, (ppid, cmd) in table.items():
            if pid in found or pid == root_pid:
                continue
            named = any(cmd[i] == "--parent-pid" and cmd[i + 1] in {str(p) for p in frontier}
                        for i in range(len(cmd) - 1))
            if ppid in frontier or named:
                found.append(pid)
                nxt.add(pid)
        frontier = nxt
    return found


def _terminate(pids: list[int], grace: float) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _is_zombie(p)]
        time.sleep(0.1)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _is_zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z"
    except (OSError, IndexError):
        return True


def run_supervised(cmd: list[str], env: dict[str, str], grace: float = 20.0,
                   on_start: Callable[[subprocess.Popen], None] | None = None) -> int:
    """Run ``cmd`` until it exits or this process is asked to stop; returns the exit code
    (0 when a forwarded stop request ended it cleanly, 128 + N when signal N killed it)."""
    child = subprocess.Popen(cmd, env=env)
    stop_requested: list[int] = []

    def forward(signum, _frame) -> None:
        stop_requested.append(signum)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    deadline = None
    try:
        if on_start is not None:
            on_start(child)
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stop_requested and deadline is None:
                    deadline = time.monotonic() + grace
                if deadline is not None and time.monotonic() > deadline:
                    _terminate(helpers_of(child.pid), 1.0)
                    child.kill()
    finally:
        leftovers = helpers_of(child.pid)
        if child.poll() is None:
            child.kill()
            child.wait()
        _terminate(leftovers, 5.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop_requested and code in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
        return 0
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N
