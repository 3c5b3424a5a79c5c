"""Stall load test: one site stalls every stream it may open; do the other sites notice?

The storage service runs as its own process (``fedcodec-server storage serve``, mutual TLS on
127.0.0.1) with its default fairness limits unless overridden. Then:

1. **baseline**: each of ``--other-sites`` sites puts and gets small encrypted objects in a
   loop for ``--duration`` seconds; every call's latency is recorded.
2. **under stall**: the hostile site opens as many Put streams as its quota allows, sends their
   metadata and then nothing (the audit's finding: 16 such streams once blocked every site for
   over 120 s). It keeps trying to open more, several per second, for the whole phase, while
   the other sites repeat the baseline loop. ``--duration`` is kept below ``--stall-seconds``,
   so the stall lasts the whole phase.
3. **recovery**: the watchdog cancels the stalled streams after ``--stall-seconds``; the
   hostile site's next put succeeds.

Reports other sites' p50/p95/max put and get latency in both phases, how the hostile site's
extra streams were answered and when its stalled streams were cancelled. Exit 1 if another site
saw any error, an extra stream was not refused with RESOURCE_EXHAUSTED, a stalled stream was not
cancelled, or other sites' p95 under stall exceeded 3x baseline + 0.25 s.

    nice -n 10 .venv/bin/python experiments/storage_stall.py --json stall.json --markdown stall.md
    .venv/bin/python experiments/storage_stall.py --duration 3 --stall-seconds 5   (quick)

Loopback only, every loop bounded by ``--duration`` or a timeout. Caveat: service, clients and
hostile streams share the machine's cores (2 here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from storage_load import start_service, stop_service

from fedcodec.client.store.connection import StoreClient
from fedcodec.server import pki
from fedcodec.server.storage.limits import StorageLimits
from fedcodec.shared.crypto import envelope
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.rpc import storage_pb2

HOSTILE = "stalling"


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def other_sites_loop(
    clients: dict[str, StoreClient], keyrings: dict[str, SiteKeyring], phase: str,
    duration: float, object_bytes: int,
) -> dict:
    """Every other site puts then gets objects until ``duration`` is over; latencies per call."""
    latencies: dict[str, list[float]] = {"put": [], "get": []}
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def one(site: str) -> None:
        i = 0
        while time.monotonic() < stop_at:
            object_id = f"{phase}-{i:05d}"
            blob = envelope.encrypt_bytes(
                os.urandom(object_bytes), keyrings[site], object_id=object_id, codec="test"
            )
            try:
                started = time.monotonic()
                clients[site].put_bytes(object_id, blob)
                put_done = time.monotonic()
                _, back = clients[site].get_bytes(object_id)
                got_done = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - every failure is a finding to report
                with lock:
                    errors.append(f"{site} {object_id}: {exc}")
                i += 1
                continue
            with lock:
                latencies["put"].append(put_done - started)
                latencies["get"].append(got_done - put_done)
                if back != blob:
                    errors.append(f"{site} {object_id}: downloaded bytes differ")
            i += 1

    threads = [threading.Thread(target=one, args=(s,)) for s in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 120)
    return {
        "phase": phase,
        "put": _percentiles(latencies["put"]),
        "get": _percentiles(latencies["get"]),
        "errors": errors,
    }


class StalledStream:
    """A Put that sends its metadata and then nothing until released or cancelled."""

    def __init__(self, client: StoreClient, object_id: str, release: threading.Event) -> None:
        self.opened = time.monotonic()

        def messages():
            yield storage_pb2.PutChunk(
                metadata=storage_pb2.PutMetadata(object_id=object_id, size=10, sha256=bytes(32))
            )
            release.wait(600)

        self.future = client._stub.Put.future(messages(), timeout=600)
        self.ended: float | None = None
        self.future.add_done_callback(lambda _f: setattr(self, "ended", time.monotonic()))

    def code(self) -> str:
        exc = self.future.exception(timeout=0) if self.future.done() else None
        if not self.future.done():
            return "RUNNING"
        return exc.code().name if exc is not None else "OK"


def stall_phase(
    hostile: StoreClient, quota: int, duration: float, work: threading.Thread,
    release: threading.Event,
) -> dict:
    """Open ``quota`` stalled streams, then keep trying more while ``work`` runs."""
    stalled = [StalledStream(hostile, f"stall-{i}", release) for i in range(quota)]
    time.sleep(0.5)  # let the service admit them before the first extra attempt
    answers: dict[str, int] = {}
    refused_ms: list[float] = []
    work.start()
    stop_at = time.monotonic() + duration
    i = 0
    while time.monotonic() < stop_at:
        extra = StalledStream(hostile, f"extra-{i:04d}", release)
        try:
            extra.future.result(timeout=10)
            answer = "OK"
        except grpc.FutureTimeoutError:
            answer = "NO ANSWER IN 10 S"
            extra.future.cancel()
        except grpc.RpcError as exc:
            answer = exc.code().name
            refused_ms.append((time.monotonic() - extra.opened) * 1000)
        answers[answer] = answers.get(answer, 0) + 1
        i += 1
        time.sleep(0.2)
    work.join()
    return {"stalled": stalled, "extra_answers": answers, "refused_ms": _percentiles(
        [m / 1000 for m in refused_ms])}


def run(args: argparse.Namespace, workdir: Path) -> dict:
    pki.init_ca(workdir / "ca")
    pki.issue_server(workdir / "ca", workdir / "tls-server")
    sites = [f"site{i + 1}" for i in range(args.other_sites)]
    keyrings = {}
    for site in [HOSTILE, *sites]:
        pki.issue_site(workdir / "ca", workdir / f"tls-{site}", site)
        keyrings[site] = SiteKeyring.create(workdir / f"keyring-{site}", site)
    options = (
        "--site-quota", str(args.site_quota), "--expected-sites", str(args.expected_sites),
        "--stall-seconds", str(args.stall_seconds),
    )
    proc, port = start_service(
        workdir / "root", workdir / "tls-server", workdir / "serve.log", args.workers, options
    )
    release = threading.Event()
    results: dict = {
        "workers": args.workers, "site_quota": args.site_quota,
        "stall_seconds": args.stall_seconds, "other_sites": args.other_sites,
        "duration_s": args.duration, "object_bytes": args.object_kib * 1024,
    }
    try:
        def connect(site: str) -> StoreClient:
            return StoreClient(f"127.0.0.1:{port}", workdir / f"tls-{site}", timeout=60)

        clients = {site: connect(site) for site in sites}
        hostile = connect(HOSTILE)
        try:
            size = args.object_kib * 1024
            baseline = other_sites_loop(clients, keyrings, "baseline", args.duration, size)
            holder: dict = {}
            work = threading.Thread(
                target=lambda: holder.update(
                    other_sites_loop(clients, keyrings, "under-stall", args.duration, size)
                )
            )
            stall = stall_phase(hostile, args.site_quota, args.duration, work, release)
            for stream in stall["stalled"]:
                try:
                    stream.future.result(timeout=args.stall_seconds + 30)
                except (grpc.RpcError, grpc.FutureTimeoutError):
                    pass
            cancelled_after = [
                round(s.ended - s.opened, 2) if s.ended else None for s in stall["stalled"]
            ]
            codes = [s.code() for s in stall["stalled"]]
            after = envelope.encrypt_bytes(b"after", keyrings[HOSTILE], object_id="after",
                                           codec="test")
            try:
                hostile.put_bytes("after", after)
                after_ok = hostile.get_bytes("after")[1] == after
            except Exception as exc:  # noqa: BLE001 - reported, and fails the run
                after_ok = f"{exc}"
            results.update(
                baseline=baseline, under_stall=holder,
                hostile={
                    "stalled_streams": len(codes), "stalled_stream_status": codes,
                    "cancelled_after_s": cancelled_after,
                    "extra_stream_answers": stall["extra_answers"],
                    "refusal_latency": stall["refused_ms"],
                    "put_after_stall_ok": after_ok,
                },
            )
        finally:
            release.set()
            for client in [*clients.values(), hostile]:
                client.close()
    finally:
        stop_service(proc)
    results["verdict"] = _verdict(results)
    return results


def _verdict(results: dict) -> list[str]:
    """Why the run failed (empty: it passed)."""
    problems = []
    base, stall, hostile = results["baseline"], results["under_stall"], results["hostile"]
    problems += base["errors"] + stall.get("errors", ["no under-stall measurements"])
    extra = hostile["extra_stream_answers"]
    if set(extra) != {"RESOURCE_EXHAUSTED"}:
        problems.append(f"extra streams of the stalling site were answered {extra}")
    if set(hostile["stalled_stream_status"]) != {"CANCELLED"}:
        problems.append(f"stalled streams ended {hostile['stalled_stream_status']}")
    if hostile["put_after_stall_ok"] is not True:
        problems.append(f"stalling site's put after the stall: {hostile['put_after_stall_ok']}")
    for op in ("put", "get"):
        limit = 3 * base[op]["p95_ms"] + 250
        if stall.get(op, {}).get("p95_ms", limit + 1) > limit:
            problems.append(
                f"{op} p95 under stall {stall[op]['p95_ms']} ms > 3 x baseline + 250 ms"
            )
    return problems


def markdown(results: dict) -> str:
    base, stall, hostile = results["baseline"], results["under_stall"], results["hostile"]
    lines = [
        f"Service: {results['workers']} workers, {results['site_quota']} calls per site, "
        f"stalls cancelled after {results['stall_seconds']:g} s; {results['other_sites']} other "
        f"sites each put+get {results['object_bytes'] // 1024} KiB objects in a loop for "
        f"{results['duration_s']:g} s per phase.",
        "",
        "| phase | puts | put p50 (ms) | put p95 (ms) | gets | get p50 (ms) | get p95 (ms) "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, phase in (("baseline", base), (f"one site stalls {results['site_quota']} "
                                             "streams", stall)):
        lines.append(
            f"| {name} | {phase['put']['n']} | {phase['put']['p50_ms']} | "
            f"{phase['put']['p95_ms']} | {phase['get']['n']} | {phase['get']['p50_ms']} | "
            f"{phase['get']['p95_ms']} | {len(phase['errors'])} |"
        )
    answers = ", ".join(f"{n} {code}" for code, n in hostile["extra_stream_answers"].items())
    cancelled = [c for c in hostile["cancelled_after_s"] if c is not None]
    lines += [
        "",
        f"Stalling site: its extra streams were answered {answers} (p50 "
        f"{hostile['refusal_latency']['p50_ms']} ms); its {hostile['stalled_streams']} stalled "
        f"streams ended {'/'.join(sorted(set(hostile['stalled_stream_status'])))} after "
        f"{min(cancelled, default=0):g}-{max(cancelled, default=0):g} s; its next put "
        f"{'succeeded' if hostile['put_after_stall_ok'] is True else 'FAILED'}.",
        f"Verdict: {'pass' if not results['verdict'] else '; '.join(results['verdict'])}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    limits = StorageLimits()
    parser.add_argument("--other-sites", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--stall-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=limits.max_workers)
    parser.add_argument("--site-quota", type=int, default=limits.site_quota)
    parser.add_argument("--expected-sites", type=int, default=limits.expected_sites)
    parser.add_argument("--object-kib", type=int, default=64)
    parser.add_argument("--json", help="write the results as JSON here ('-': stdout)")
    parser.add_argument("--markdown", help="write the Markdown table here")
    args = parser.parse_args(argv)
    if not (1 <= args.other_sites <= 16 and 0.5 <= args.duration <= 300
            and 1 <= args.object_kib <= 4096):
        parser.error("keep the test bounded: 1-16 other sites, 0.5-300 s, 1-4096 KiB")
    if args.duration >= args.stall_seconds:
        parser.error("--duration must be below --stall-seconds (the stall must last the phase)")
    with tempfile.TemporaryDirectory(prefix="fedcodec-stall-") as tmp:
        results = run(args, Path(tmp))
    table = markdown(results)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json == "-":
        print(json.dumps(results))
    elif args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if results["verdict"] else 0


if __name__ == "__main__":
    sys.exit(main())
