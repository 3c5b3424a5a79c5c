"""Must-show: SIGKILL the service in the middle of 200 concurrent uploads, restart it, and every
acknowledged upload reads back byte-exact, while nothing partial is ever listed.

The service runs as a real child process (``fedcodec-server storage serve``) on 127.0.0.1; the
kill is SIGKILL, so no shutdown code runs. Bounded: 200 objects of 32-320 KiB, 16 upload threads,
each call with a 20 s deadline.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from test_storage_support import ServiceProcess, make_federation

from fedcodec.server.audit.report import audit_storage
from fedcodec.shared.crypto import envelope
from fedcodec.shared.errors import FedcodecError

UPLOADS = 200
THREADS = 16
KILL_AFTER_ACKS = 50


def test_acknowledged_uploads_survive_sigkill(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("a",))
    rng = random.Random(5)
    plain = {f"obj{i:03d}": rng.randbytes(rng.randrange(32, 320) * 1024) for i in range(UPLOADS)}
    blobs = {oid: fed.sealed("a", oid, data) for oid, data in plain.items()}
    root = tmp_path / "root"

    first = ServiceProcess(root, fed.server_tls, tmp_path / "serve-1.log")
    acked: dict[str, str] = {}
    failed: dict[str, str] = {}
    lock = threading.Lock()
    clients = [fed.client("a", first.port, chunk_bytes=32 * 1024) for _ in range(4)]

    def upload(n: int, object_id: str) -> None:
        try:
            info = clients[n % len(clients)].put_bytes(object_id, blobs[object_id])
        except FedcodecError as exc:
            with lock:
                failed[object_id] = str(exc)
            return
        with lock:
            acked[object_id] = info.sha256

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(upload, n, oid) for n, oid in enumerate(blobs)]
            deadline = time.monotonic() + 60
            while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
                time.sleep(0.005)
            first.kill()
            killed_with = len(acked)
            for future in futures:
                future.result(timeout=30)
    finally:
        for client in clients:
            client.close()
        first.kill()

    assert KILL_AFTER_ACKS <= killed_with < UPLOADS, "the kill must land mid-way"
    assert failed, "some uploads must have been cut off by the kill"
    assert set(acked) | set(failed) == set(blobs)
    for object_id, sha in acked.items():
        assert sha == hashlib.sha256(blobs[object_id]).hexdigest()

    second = ServiceProcess(root, fed.server_tls, tmp_path / "serve-2.log")
    try:
        assert not list((root / "objects" / "a").glob(".tmp-*")), "recovery removes partial uploads"
        with fed.client("a", second.port) as client:
            listed = {o.object_id: o for o in client.list()}
            missing = sorted(set(acked) - set(listed))
            assert not missing, f"acknowledged but lost: {missing}"
            for object_id, info in listed.items():
                # Listed means complete: acknowledged, or committed just before the kill.
                _, data = client.get_bytes(object_id)
                assert info.size == len(data) == len(blobs[object_id]), object_id
                assert hashlib.sha256(data).hexdigest() == info.sha256
                assert data == blobs[object_id]
                assert envelope.decrypt_bytes(data, fed.keyrings["a"])[1] == plain[object_id]
        recovered = second.output()
    finally:
        second.stop()
    report = audit_storage(root)
    assert report.ok, report.problems
    assert report.objects_checked == len(listed)
    print(
        f"\ncrash test: killed after {killed_with} acks; {len(acked)} acknowledged, "
        f"{len(failed)} cut off, {len(listed)} listed after restart "
        f"({len(listed) - len(acked)} committed without ack)\n{recovered.strip()}"
    )
