"""Size limits of the storage service, in one place so server, client and tests agree."""

from __future__ import annotations

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
    """

    max_object_bytes: int = 4 * 1024 * MIB
    chunk_bytes: int = 1 * MIB
    max_message_bytes: int = 4 * MIB
    max_list_page: int = 1000
    max_workers: int = 16
    max_concurrent_rpcs: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.chunk_bytes < self.max_message_bytes:
            raise ValueError("chunk_bytes must be positive and below max_message_bytes")
        numbers = (
            self.max_object_bytes, self.max_list_page, self.max_workers, self.max_concurrent_rpcs
        )
        if min(numbers) <= 0:
            raise ValueError("storage limits must be positive")
