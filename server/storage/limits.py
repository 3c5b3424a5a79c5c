"""Size, time and concurrency limits of the storage service, in one place so server, client and
tests agree."""

from __future__ import annotations

import math
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class StorageLimits:
    """Bounds that keep one caller from exhausting memory, disk or threads.

    ``chunk_bytes`` is the size of the data messages the server sends; it accepts any chunk up
    to ``max_message_bytes``, the gRPC message cap on both sides, so clients configured with
    another chunk size keep working. ``max_concurrent_rpcs`` bounds calls in progress or queued
    for the ``max_workers`` threads; beyond it a call is refused with RESOURCE_EXHAUSTED
    instead of queueing without bound.

    Time and fairness (see :mod:`.call_guard`): a site may run ``site_quota`` calls at once
    (more are refused with RESOURCE_EXHAUSTED before they read anything); a call that waits on
    its peer for more than ``stall_seconds`` (no message received, or a sent message not taken)
    is cancelled and its worker freed; a call still running after ``call_seconds`` is cancelled
    at its next wait on the peer. ``expected_sites`` sites may hold their whole quota at once
    and still leave workers for everyone else: ``expected_sites * site_quota < max_workers``
    is checked here, so a misconfiguration fails at start, not under load.
    """

    max_object_bytes: int = 4 * 1024 * MIB
    chunk_bytes: int = 1 * MIB
    max_message_bytes: int = 4 * MIB
    max_list_page: int = 1000
    max_workers: int = 32
    max_concurrent_rpcs: int = 256
    site_quota: int = 6
    expected_sites: int = 4
    stall_seconds: float = 30.0
    call_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.chunk_bytes < self.max_message_bytes:
            raise ValueError("chunk_bytes must be positive and below max_message_bytes")
        numbers = (
            self.max_object_bytes, self.max_list_page, self.max_workers, self.max_concurrent_rpcs,
            self.site_quota, self.expected_sites, self.stall_seconds, self.call_seconds,
        )
        if not all(math.isfinite(n) and n > 0 for n in numbers):
            raise ValueError("storage limits must be positive finite numbers")
        if self.expected_sites * self.site_quota >= self.max_workers:
            raise ValueError(
                f"{self.expected_sites} sites x {self.site_quota} calls per site need more than "
                f"{self.max_workers} workers: raise --workers above "
                f"{self.expected_sites * self.site_quota} or lower --site-quota/--expected-sites"
            )
