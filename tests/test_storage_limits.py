"""Per-site quotas, stall cancellation and deadlines of the storage service (issue 14, item 2).

A real mutual-TLS service on loopback with a small pool (4 workers, 2 calls per site, stalls
cancelled after 2 s): site ``a`` opens uploads that send their metadata and then nothing. Its
calls beyond the quota are refused with RESOURCE_EXHAUSTED at once, site ``b`` keeps putting and
getting quickly, and the stalled uploads are cancelled, audited and their slots freed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from test_storage_support import make_federation, running_service

from fedcodec.server.storage.call_guard import CallGuard
from fedcodec.server.storage.errors import QuotaExceeded
from fedcodec.server.storage.limits import StorageLimits
from fedcodec.shared.rpc import storage_pb2
from fedcodec.shared.rpc.retry_hint import RETRY_AFTER_KEY, retry_after_seconds

LIMITS = StorageLimits(max_workers=4, site_quota=2, expected_sites=1, stall_seconds=2.0)


def _stalling_put(client, object_id: str, release: threading.Event) -> grpc.Future:
    """A Put that sends its metadata, then nothing until ``release`` (or the call ends)."""

    def messages():
        yield storage_pb2.PutChunk(
            metadata=storage_pb2.PutMetadata(object_id=object_id, size=10, sha256=bytes(32))
        )
        release.wait(30)

    return client._stub.Put.future(messages(), timeout=30)


def test_stalling_site_is_refused_beyond_its_quota_and_others_still_served(
    tmp_path: Path,
) -> None:
    fed = make_federation(tmp_path)
    release = threading.Event()
    root = tmp_path / "root"
    with running_service(fed, root, LIMITS) as running, fed.client(
        "a", running.port
    ) as a, fed.client("b", running.port) as b:
        stalled = [_stalling_put(a, f"stall-{i}", release) for i in range(LIMITS.site_quota)]
        deadline = time.monotonic() + 5
        while running.guard.running("a") < LIMITS.site_quota and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.guard.running("a") == LIMITS.site_quota

        started = time.monotonic()
        extra = _stalling_put(a, "one-too-many", release)
        with pytest.raises(grpc.RpcError) as refused:
            extra.result(timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "quota is 2" in refused.value.details()
        assert dict(refused.value.trailing_metadata())[RETRY_AFTER_KEY] == "200"
        assert retry_after_seconds(refused.value) == 0.2
        with pytest.raises(grpc.RpcError) as listed:
            a._stub.List(storage_pb2.ListRequest(), timeout=5)
        assert listed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        blob = fed.sealed("b", "b-study", b"other site's study" * 1000)
        b.put_bytes("b-study", blob)
        assert b.get_bytes("b-study")[1] == blob
        assert [o.object_id for o in b.list()] == ["b-study"]
        served = time.monotonic() - started
        assert served < LIMITS.stall_seconds, f"other site waited {served:.2f} s"

        patient = fed.sealed("a", "waited", b"queued behind the site's own stalls")
        waited: list[object] = []
        waiting = threading.Thread(target=lambda: waited.append(a.put_bytes("waited", patient)))
        waiting.start()  # StoreClient retries the quota refusal until a slot frees up

        for future in stalled:  # the watchdog cancels each stalled upload after ~2 s
            with pytest.raises(grpc.RpcError) as cancelled:
                future.result(timeout=10)
            assert cancelled.value.code() == grpc.StatusCode.CANCELLED
        deadline = time.monotonic() + 5
        while running.guard.running("a") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.guard.running("a") == 0
        waiting.join(timeout=20)
        assert len(waited) == 1 and a.get_bytes("waited")[1] == patient
        own = fed.sealed("a", "a-study", b"after the stall")
        a.put_bytes("a-study", own)  # the freed slots serve the site again
        assert a.get_bytes("a-study")[1] == own
        release.set()
    entries = [
        json.loads(line) for line in (root / "audit" / "audit.jsonl").read_text().splitlines()
    ]
    outcomes = [(e["site"], e["outcome"]) for e in entries]
    assert outcomes.count(("a", "over_quota")) >= 3  # the extra stream, List, the retried put
    assert outcomes.count(("a", "stalled")) == LIMITS.site_quota
    assert not any(
        e["outcome"] == "ok" and e["object_id"].startswith("stall") for e in entries
    )


class _Context:
    def __init__(self) -> None:
        self.cancelled = 0

    def cancel(self) -> None:
        self.cancelled += 1


def test_watchdog_counts_only_time_waiting_on_the_client_and_enforces_the_deadline() -> None:
    now = [0.0]
    limits = StorageLimits(
        max_workers=4, site_quota=1, expected_sites=1, stall_seconds=5, call_seconds=20
    )
    guard = CallGuard(limits, clock=lambda: now[0])
    busy, slow = _Context(), _Context()
    working = guard.admit("a", "put", busy)
    with pytest.raises(QuotaExceeded, match="quota is 1"):
        guard.admit("a", "get", _Context())
    trickling = guard.admit("b", "put", slow)
    now[0] = 100.0  # the service worked 100 s (fsync, S3 upload): not a stall
    assert guard.sweep() == [] and busy.cancelled == 0
    guard.release(working)
    assert guard.running("a") == 0
    with trickling.waiting_on_peer():
        now[0] += 4  # a message every 4 s is no stall, but the call is past its deadline
        assert guard.sweep() == [trickling]
    assert slow.cancelled == 1 and "deadline of 20 s" in trickling.cancelled_because


def test_limits_refuse_a_pool_one_site_could_exhaust() -> None:
    with pytest.raises(ValueError, match="raise --workers above 8"):
        StorageLimits(max_workers=8, site_quota=4, expected_sites=2)
    assert StorageLimits(max_workers=9, site_quota=4, expected_sites=2).site_quota == 4
    with pytest.raises(ValueError, match="must be positive finite"):
        StorageLimits(stall_seconds=0)


def test_a_download_the_client_does_not_read_is_cancelled_and_its_slot_freed(
    tmp_path: Path,
) -> None:
    fed = make_federation(tmp_path, ("a",))
    with running_service(fed, tmp_path / "root", LIMITS) as running, fed.client(
        "a", running.port
    ) as a:
        a.put_bytes("big", fed.sealed("a", "big", os.urandom(32 << 20)))  # beyond gRPC windows
        call = a._stub.Get(storage_pb2.GetRequest(object_id="big"), timeout=30)
        assert next(call).WhichOneof("part") == "info"  # then read nothing
        deadline = time.monotonic() + 10
        while running.guard.running("a") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.guard.running("a") == 0
        with pytest.raises(grpc.RpcError) as cancelled:
            for _ in call:
                pass
        assert cancelled.value.code() == grpc.StatusCode.CANCELLED


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf")])
def test_a_stall_timeout_must_be_a_positive_number(value: float) -> None:
    with pytest.raises(ValueError, match="must be positive finite numbers"):
        StorageLimits(stall_seconds=value)


def test_serve_refuses_bad_limits_in_one_line(tmp_path: Path) -> None:
    value = "nan"
    done = subprocess.run(
        [sys.executable, "-m", "fedcodec.server.cli", "storage", "serve", "--root",
         str(tmp_path / "root"), "--tls-dir", str(tmp_path / "tls"), "--port", "0",
         "--stall-seconds", value],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "fedcodec-server: error: invalid storage limits: storage limits must be positive "
        "finite numbers"
    ]
