"""Per-site admission and a stall watchdog: one site exhausts its own quota, never the service.

Why: gRPC's ``maximum_concurrent_rpcs`` is one number for every caller, so a single site that
opened 16 uploads and then sent nothing held all 16 workers, and every other site's calls timed
out behind them. Two rules fix that:

* **Admission** (:meth:`CallGuard.admit`): a handler asks for a slot as soon as the TLS identity
  is known and *before* its first blocking read. A site already running ``site_quota`` calls is
  refused with :class:`~.errors.QuotaExceeded` (RESOURCE_EXHAUSTED); the refused call held a
  worker for microseconds. With ``expected_sites * site_quota < max_workers`` (checked by
  :class:`~.limits.StorageLimits`) stalled sites can never take the last worker.
* **Watchdog** (:meth:`CallGuard.sweep`, run by one thread every ``tick`` seconds): a call that
  has waited on its peer (a message not received, a sent message not taken) for longer than
  ``stall_seconds``, or that waits on its peer after running ``call_seconds``, is cancelled
  with ``context.cancel()``. Its blocked read or write returns at once, the handler unwinds,
  nothing is stored, and the worker and the quota slot are free again. Time the service itself
  spends (hashing, fsync, an S3 upload at commit) is never counted as a stall.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from fedcodec.server.storage.errors import QuotaExceeded
from fedcodec.server.storage.limits import StorageLimits


class Cancellable(Protocol):
    def cancel(self) -> object: ...


@dataclass(eq=False)
class GuardedCall:
    """One admitted call: who runs it, since when, and whether it is waiting on its peer."""

    site: str
    action: str
    context: Cancellable
    started: float
    clock: Callable[[], float] = field(repr=False)
    waiting_since: float | None = None
    cancelled_because: str = ""

    @contextmanager
    def waiting_on_peer(self) -> Iterator[None]:
        """Mark the enclosed block as time spent waiting on the client (the stall clock runs)."""
        self.waiting_since = self.clock()
        try:
            yield
        finally:
            self.waiting_since = None


class CallGuard:
    """Quota-checked admission of calls per site, and the watchdog that cancels stalled ones."""

    def __init__(self, limits: StorageLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits, self.clock = limits, clock
        self.tick = min(max(min(limits.stall_seconds, limits.call_seconds) / 4, 0.05), 1.0)
        self._lock = threading.Lock()
        self._per_site: dict[str, int] = {}
        self._calls: set[GuardedCall] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- admission -----------------------------------------------------------------------------

    def admit(self, site: str, action: str, context: Cancellable) -> GuardedCall:
        """A slot for ``site``'s call, or :class:`QuotaExceeded` when its quota is in use."""
        with self._lock:
            running = self._per_site.get(site, 0)
            if running >= self.limits.site_quota:
                raise QuotaExceeded(
                    f"site {site!r} already runs {running} calls (its quota is "
                    f"{self.limits.site_quota}); retry when one has finished"
                )
            self._per_site[site] = running + 1
            call = GuardedCall(site, action, context, self.clock(), self.clock)
            self._calls.add(call)
        return call

    def release(self, call: GuardedCall) -> None:
        with self._lock:
            if call not in self._calls:
                return
            self._calls.discard(call)
            left = self._per_site[call.site] - 1
            if left:
                self._per_site[call.site] = left
            else:
                del self._per_site[call.site]

    def running(self, site: str) -> int:
        """Calls ``site`` holds right now."""
        with self._lock:
            return self._per_site.get(site, 0)

    # -- watchdog ------------------------------------------------------------------------------

    def sweep(self) -> list[GuardedCall]:
        """Cancel every call stalled on its peer or past its deadline; return them."""
        now = self.clock()
        overdue = []
        with self._lock:
            calls = list(self._calls)
        for call in calls:
            since = call.waiting_since
            if since is None or call.cancelled_because:
                continue
            if now - since > self.limits.stall_seconds:
                call.cancelled_because = (
                    f"no progress from the client for {self.limits.stall_seconds:g} s"
                )
            elif now - call.started > self.limits.call_seconds:
                call.cancelled_because = (
                    f"call exceeded the service deadline of {self.limits.call_seconds:g} s"
                )
            else:
                continue
            call.context.cancel()
            overdue.append(call)
        return overdue

    def start(self) -> None:
        """Run :meth:`sweep` every ``tick`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="storage-watchdog", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.tick):
            self.sweep()
