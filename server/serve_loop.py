"""Keep a started gRPC service in the foreground until SIGTERM or SIGINT, then stop it gracefully.

Why one place: the storage and analysis services are run the same way (by hand, by the demo, by
docker compose); both must drain in-flight calls on ``docker stop`` / Ctrl-C instead of dying
mid-write, and print one line when they are down.
"""

from __future__ import annotations

import signal
import threading
from typing import Protocol


class StoppableServer(Protocol):
    def stop(self, grace: float) -> object: ...


def serve_until_signalled(running: StoppableServer, name: str, *, grace: float = 5.0) -> int:
    """Block until SIGTERM/SIGINT, stop ``running`` with ``grace`` seconds to drain; exit code 0."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.stop(grace=grace)
    print(f"{name} stopped", flush=True)
    return 0
