"""Independent chains of a neural volume, and running them on several processes.

Stream *i* of a volume needs the streams its reference offsets name (always earlier ones), so a
volume decodes in order - but only within a *chain*: wherever no later stream reaches back past
a slice, the volume splits into chains that share nothing and decode in any order, on any core.
A chain starts at every slice coded alone that nothing after it reaches across: the encoder's
per-slice reference check (references dropped when they do not pay), classical fallback
slices, and the ``restart=K`` option of the codec (an independent chain every K slices).

Chains run in worker processes, not threads: the coder's hot path is many small numpy calls
and a per-table Python loop (~100 runs per group), which hold the GIL (threads on chains were
not measured). Each worker codes with one in-slice thread, so workers x threads never exceeds
the cores. Results never depend on how many workers run: every
chain is coded exactly as it would be in order, and results come back in chain order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from fedcodec.shared.errors import FedcodecError

WORKERS_ENV = "FEDCODEC_NEURAL_WORKERS"
"""Worker processes for independent chains (default: the cores this process may use)."""
THREADS_ENV = "FEDCODEC_NEURAL_THREADS"

PARALLEL_MIN_PIXELS = 1 << 18
"""Less work than this (four 256x256 slices, ~0.3 s of coding) runs in this process: starting
worker processes would cost more than it saves."""

T = TypeVar("T")


def chain_starts(reaches: Sequence[int]) -> list[int]:
    """First slice of every chain, given how far back each slice reaches.

    ``reaches[i]`` is the lowest slice index stream *i* needs (``i`` itself when it has no
    references). A chain starts at ``j`` when no stream from ``j`` on needs a slice before
    ``j``. Slice 0 always starts one; a stream reaching before 0 (corrupt) joins the first chain,
    where decoding reports it.
    """
    starts: list[int] = []
    lowest = len(reaches)
    for j in range(len(reaches) - 1, -1, -1):
        lowest = min(lowest, reaches[j])
        if lowest >= j or j == 0:
            starts.append(j)
    return starts[::-1]


def chains(reaches: Sequence[int]) -> list[range]:
    """The chains (index ranges, in order) of a volume; see :func:`chain_starts`."""
    starts = chain_starts(reaches)
    return [range(a, b) for a, b in zip(starts, [*starts[1:], len(reaches)], strict=True)]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def others_runnable() -> float:
    """How many other threads want a core: the lower of the 1-minute load average and the
    threads runnable right now (``/proc/loadavg``), less this one. The instantaneous count
    forgets this process's own earlier workers, which the 1-minute average still counts; the
    average smooths a momentary burst. 0 where the OS tells neither."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            fields = f.read().split()
        return max(0.0, min(float(fields[0]), float(fields[3].split("/")[0])) - 1)
    except (OSError, ValueError, IndexError):
        return 0.0


def worker_count(jobs: int) -> int:
    """Processes for ``jobs`` independent chains: ``FEDCODEC_NEURAL_WORKERS``, else the usable
    cores, or 1 when other work already fills every core (measured: on a machine saturated by
    other sessions, two workers decoded a study 0.75-0.92x as fast as one - the scheduler
    shares the CPU between sessions, so a second process only adds overhead); never more than
    the jobs."""
    value = os.environ.get(WORKERS_ENV)
    if value is not None:
        try:
            wanted = int(value)
        except ValueError:
            raise FedcodecError(f"{WORKERS_ENV} must be a whole number, not {value!r}") from None
        if wanted < 1:
            raise FedcodecError(f"{WORKERS_ENV} must be at least 1, not {wanted}")
    else:
        cores = usable_cores()
        wanted = 1 if others_runnable() >= cores else cores
    return max(1, min(wanted, jobs))


def _one_thread_per_worker() -> None:
    """Worker initialiser: the in-slice threads would oversubscribe the cores (and a worker
    never starts workers of its own)."""
    os.environ[THREADS_ENV] = "1"
    os.environ[WORKERS_ENV] = "1"


def _start_method() -> str:
    """``fork`` (workers inherit the loaded weights: no start-up cost) unless the process runs
    gRPC, whose threads and fork handlers make forking unsafe; then ``spawn``."""
    if "fork" in multiprocessing.get_all_start_methods() and "grpc" not in sys.modules:
        return "fork"
    return "spawn"


def run_jobs(function: Callable[..., T], jobs: Sequence[tuple[Any, ...]],
             pixels: Sequence[int]) -> list[T]:
    """``[function(*job) for job in jobs]``, on worker processes when there are several jobs,
    cores and enough work. ``pixels`` (work per job) orders submission longest first, so the
    pool ends together; results come back in the order of ``jobs``. A worker's exception is
    raised here as it was raised there (a corrupt stream keeps its one-line error)."""
    return list(iter_jobs(function, jobs, pixels))


def iter_jobs(function: Callable[..., T], jobs: Sequence[tuple[Any, ...]],
              pixels: Sequence[int]) -> Iterator[T]:
    """:func:`run_jobs`, yielding each result (in the order of ``jobs``) as soon as it is done,
    so a caller can report progress."""
    workers = worker_count(len(jobs))
    if (workers == 1 or sum(pixels) < PARALLEL_MIN_PIXELS
            or multiprocessing.current_process().daemon):  # daemons may not fork
        for job in jobs:
            yield function(*job)
        return
    order = sorted(range(len(jobs)), key=lambda i: -pixels[i])
    context = multiprocessing.get_context(_start_method())
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_one_thread_per_worker)
    try:
        futures = {i: pool.submit(function, *jobs[i]) for i in order}
        for i in range(len(jobs)):
            try:
                result = futures[i].result()
            except BrokenProcessPool:
                raise FedcodecError("a worker process died (out of memory?); set "
                                    f"{WORKERS_ENV}=1 to code in this process") from None
            yield result
    except BaseException:
        # interrupted, terminated or failed: stop the workers now rather than wait for the
        # slices they are coding (a worker left running outlives the command)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError):
                process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
