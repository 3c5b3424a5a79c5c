"""Keep a started gRPC service in the foreground until SIGTERM or SIGINT, then stop it gracefully.

Why one place: the storage and analysis services are run the same way (by hand, by the demo, by
docker compose); both must drain in-flight calls on ``docker stop`` / Ctrl-C instead of dying
mid-write, and print one line when they are down.

Two details matter (a CI run hung 30 s on the second one):
- the handlers are installed *before* the "listening" line is printed, so a supervisor that
  signals as soon as it reads that line never meets the default (kill, exit -15) handler;
- the main thread polls instead of blocking forever in ``Event.wait()``: the kernel may deliver
  the signal to one of gRPC's threads, and then nothing interrupts a main thread parked on a lock,
  so the Python-level handler would not run until something else woke it.
"""

from __future__ import annotations

import signal
import threading
from typing import Protocol

POLL_SECONDS = 0.2


class StoppableServer(Protocol):
    def stop(self, grace: float) -> object: ...


def serve_until_signalled(running: StoppableServer, name: str, *, ready_line: str,
                          grace: float = 5.0) -> int:
    """Print ``ready_line``, block until SIGTERM/SIGINT, stop with ``grace`` s to drain; exit 0."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(ready_line, flush=True)
    while not stop.wait(POLL_SECONDS):
        pass
    running.stop(grace=grace)
    print(f"{name} stopped", flush=True)
    return 0
