"""Load test of the storage service: N concurrent clients put and get encrypted objects.

Each client is a thread with its own mutual-TLS channel and does what ``fedcodec store put`` /
``get`` do: encrypt a file with the site keyring (envelope API) and stream it up; download,
verify and decrypt it into a new file. The service runs as a separate process
(``fedcodec-server storage serve``) on 127.0.0.1, exactly as deployed. For scale, the same bytes
are also copied file-to-file (each copy fsynced, as the service fsyncs every object) by as many
threads, in the same run.

Throughput is plaintext MB (10^6 bytes) per second of wall time over all clients together. The
run fails (exit 1) on any error or any byte that does not round-trip.

Heavy variant (the numbers to quote):
    nice -n 10 .venv/bin/python experiments/storage_load.py --clients 50 --object-kib 4096
Light variant (tests/test_storage_load.py runs it):
    .venv/bin/python experiments/storage_load.py --clients 50 --object-kib 256 --json -

Caveat: clients, service and copies share the machine's cores (2 here), and the clients' Python
threads share one GIL, so this measures the whole system on one box, not the service alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fedcodec.client.store.connection import StoreClient
from fedcodec.client.store.transfer import get_file, put_file
from fedcodec.server import pki
from fedcodec.shared.crypto.keyring import SiteKeyring

MB = 1_000_000
LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


def start_service(
    root: Path, tls: Path, log: Path, workers: int, options: tuple[str, ...] | None = None
) -> tuple[subprocess.Popen, int]:
    """The service as a child process; returns it and its port.

    ``options`` are extra ``storage serve`` flags; by default one site may use all workers but
    one (this test runs every client as one site; clients beyond that wait and retry, as the
    quota tells them to; see docs/storage-service.md).
    """
    if options is None:
        options = ("--expected-sites", "1", "--site-quota", str(workers - 1))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRPC_VERBOSITY": "ERROR"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedcodec.server.cli", "storage", "serve", "--root", str(root),
             "--tls-dir", str(tls), "--port", "0", "--workers", str(workers), *options],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = LISTENING.search(log.read_text(errors="replace"))
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("storage service did not start:\n" + log.read_text(errors="replace"))


def stop_service(proc: subprocess.Popen) -> None:
    """SIGTERM (the service drains and closes its index), then kill after 15 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def timed_parallel(
    clients: int, work: Callable[[int], None]
) -> tuple[float, list[float], list[str]]:
    """Run ``work(i)`` for every client at once; wall seconds, per-call seconds, errors."""
    barrier = threading.Barrier(clients + 1)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        barrier.wait()
        start = time.perf_counter()
        try:
            work(i)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            with lock:
                errors.append(f"client {i}: {type(exc).__name__}: {exc}")
            return
        with lock:
            latencies.append(time.perf_counter() - start)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one, i) for i in range(clients)]
        barrier.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        wall = time.perf_counter() - start
    return wall, latencies, errors


def _summary(
    name: str, total_bytes: int, wall: float, latencies: list[float], errors: list[str]
) -> dict:
    return {
        "phase": name,
        "mb_per_s": round(total_bytes / MB / wall, 2),
        "wall_s": round(wall, 3),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_max_s": round(max(latencies), 3) if latencies else None,
        "errors": len(errors),
    }


def run(clients: int, object_bytes: int, workdir: Path, workers: int) -> dict:
    """Set up a CA, a site and a service in ``workdir``; measure copy, put and get."""
    pki.init_ca(workdir / "ca")
    pki.issue_server(workdir / "ca", workdir / "tls-server")
    pki.issue_site(workdir / "ca", workdir / "tls-site", "load")
    keyring = SiteKeyring.create(workdir / "keyring", "load")
    sources = workdir / "plain"
    sources.mkdir()
    digests = []
    for i in range(clients):
        data = os.urandom(object_bytes)
        (sources / f"obj{i:03d}.bin").write_bytes(data)
        digests.append(hashlib.sha256(data).hexdigest())
    total = clients * object_bytes
    copies, downloads = workdir / "copies", workdir / "downloads"
    copies.mkdir()
    downloads.mkdir()

    def copy(i: int) -> None:
        target = copies / f"obj{i:03d}.bin"
        shutil.copyfile(sources / f"obj{i:03d}.bin", target)
        with open(target, "rb+") as handle:
            os.fsync(handle.fileno())

    proc, port = start_service(
        workdir / "root", workdir / "tls-server", workdir / "serve.log", workers
    )
    results = {"clients": clients, "object_bytes": object_bytes, "total_bytes": total, "phases": []}
    all_errors: list[str] = []
    try:
        connections = [
            StoreClient(f"127.0.0.1:{port}", workdir / "tls-site", timeout=300)
            for _ in range(clients)
        ]
        try:
            wall, lat, errs = timed_parallel(clients, copy)
            results["phases"].append(_summary("plain file copy (fsync)", total, wall, lat, errs))
            all_errors += errs

            def put(i: int) -> None:
                source = sources / f"obj{i:03d}.bin"
                put_file(connections[i], keyring, source, object_id=f"obj{i:03d}")

            wall, lat, errs = timed_parallel(clients, put)
            results["phases"].append(_summary("encrypted put", total, wall, lat, errs))
            all_errors += errs

            def get(i: int) -> None:
                get_file(connections[i], keyring, f"obj{i:03d}", downloads / f"obj{i:03d}.bin")

            wall, lat, errs = timed_parallel(clients, get)
            results["phases"].append(_summary("encrypted get", total, wall, lat, errs))
            all_errors += errs
        finally:
            for connection in connections:
                connection.close()
    finally:
        stop_service(proc)
    for i, digest in enumerate(digests):
        path = downloads / f"obj{i:03d}.bin"
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            all_errors.append(f"client {i}: downloaded bytes differ from the upload")
    results["errors"] = all_errors
    results["stored_objects"] = len(list((workdir / "root" / "objects" / "load").iterdir()))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--object-kib", type=int, default=4096, help="plaintext per client")
    parser.add_argument("--workers", type=int, default=16, help="service thread pool size")
    parser.add_argument("--json", help="also write the results as JSON to this file ('-': stdout)")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 200 or not 1 <= args.object_kib <= 64 * 1024:
        parser.error("keep the load bounded: 1-200 clients, 1 KiB-64 MiB per object")
    with tempfile.TemporaryDirectory(prefix="fedcodec-load-") as tmp:
        results = run(args.clients, args.object_kib * 1024, Path(tmp), args.workers)
    if args.json == "-":
        print(json.dumps(results))
    else:
        total_mb = results["total_bytes"] / MB
        print(f"{args.clients} clients x {args.object_kib} KiB = {total_mb:.1f} MB")
        for phase in results["phases"]:
            print(
                f"  {phase['phase']:<26} {phase['mb_per_s']:>8.2f} MB/s  "
                f"wall {phase['wall_s']:.2f} s  p50 {phase['latency_p50_s']} s  "
                f"max {phase['latency_max_s']} s  errors {phase['errors']}"
            )
        for error in results["errors"][:10]:
            print(f"  ERROR {error}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
