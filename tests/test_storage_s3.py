"""The S3 backend on boto3, end to end against moto's standalone S3 server (issue 14, item 9).

moto runs as a real HTTP server on a free loopback port (``ThreadedMotoServer``); boto3 signs
every request with SigV4 and objects above the part size go up as multipart uploads. Two
service replicas (each with its own root: index and audit log) share one bucket: concurrent puts
of one id have exactly one winner (conditional writes), both replicas list the same objects, and
a crash between upload and index never shows a partial object.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer
from test_storage_support import make_federation

from fedcodec.server.audit.report import audit_storage
from fedcodec.server.storage.errors import ObjectExists, ObjectMissing
from fedcodec.server.storage.listener import start_storage_server
from fedcodec.server.storage.root import open_storage
from fedcodec.server.storage.s3_backend import MIB, S3Backend, S3Error, S3Settings
from fedcodec.server.storage.service import PutMetadata, StorageService
from fedcodec.shared.crypto import envelope

KEY, SECRET, BUCKET, PREFIX = "fedcodec-test", "fedcodec-test-secret", "studies", "fedcodec"
PART = 5 * MIB


def _atomic(method: Callable, lock: threading.Lock) -> Callable:
    @functools.wraps(method)
    def serialised(*args: object, **kwargs: object) -> object:
        with lock:
            return method(*args, **kwargs)

    return serialised


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, its conditional writes made atomic.

    moto 5.2.1 checks ``If-None-Match: *`` and then stores the key in two steps without a lock
    (``moto/s3/responses.py``), so two concurrent multipart completes of one key can both
    succeed (seen here: both replicas "won"). AWS S3 and MinIO decide the precondition
    atomically with the write; one lock around moto's PutObject and CompleteMultipartUpload
    handlers gives the same guarantee. Everything else is moto as shipped.
    """
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    lock = threading.Lock()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("put_object", "_key_response_post"):
            patch.setattr(S3Response, name, _atomic(getattr(S3Response, name), lock))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


@pytest.fixture()
def bucket(moto_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test (moto keeps state for the whole module)."""
    name = f"{BUCKET}-{abs(hash(request.node.name)) % 10**8}"
    _raw(moto_endpoint).create_bucket(Bucket=name)
    return name


def _raw(endpoint: str):
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


def _backend(endpoint: str, bucket: str, root: Path) -> S3Backend:
    settings = S3Settings(endpoint, bucket, "us-east-1", KEY, SECRET, PREFIX, part_bytes=PART)
    return S3Backend(settings, root / "spool")


def _put(service: StorageService, blob: bytes, object_id: str, replace: bool = False) -> None:
    meta = PutMetadata(object_id, "", len(blob), hashlib.sha256(blob).digest(), replace)
    service.put("a", meta, [blob[i : i + (1 << 20)] for i in range(0, len(blob), 1 << 20)])


def _get(service: StorageService, object_id: str) -> bytes:
    _, stream = service.get("a", "", object_id)
    return b"".join(stream)


def _keys(endpoint: str, bucket: str, prefix: str = "") -> set[str]:
    listing = _raw(endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_service_rules_hold_over_s3(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("a", "b"))
    root = tmp_path / "root"
    service, _ = open_storage(root, backend=_backend(moto_endpoint, bucket, root))
    blobs = {f"s{i}": fed.sealed("a", f"s{i}", bytes([i]) * 100_000) for i in range(4)}
    blobs["big"] = fed.sealed("a", "big", os.urandom(12 * MIB))  # 3 parts of 5 MiB
    try:
        for object_id, blob in blobs.items():
            _put(service, blob, object_id)
        assert _keys(moto_endpoint, bucket) == {f"{PREFIX}/objects/a/{i}" for i in blobs}
        head = _raw(moto_endpoint).head_object(Bucket=bucket, Key=f"{PREFIX}/objects/a/big")
        assert head["ETag"].strip('"').endswith("-3")  # really went up as a multipart upload
        assert head["Metadata"]["sha256"] == hashlib.sha256(blobs["big"]).hexdigest()
        for object_id, blob in blobs.items():
            assert _get(service, object_id) == blob
        fed.keyrings["a"].import_peer("b", fed.keyrings["b"].public_key_bytes())
        shared = envelope.replace_header(
            blobs["s0"], envelope.share(blobs["s0"], fed.keyrings["a"], "b")
        )
        _put(service, shared, "s0", replace=True)
        assert _get(service, "s0") == shared
        service.delete("a", "", "s1")
        assert f"{PREFIX}/objects/a/s1" not in _keys(moto_endpoint, bucket)
        for object_id in ("s2", "big"):  # write-once: a second commit is refused by S3 (412)
            pending = service.backend.begin("a", object_id)
            pending.write(blobs[object_id])
            with pytest.raises(ObjectExists):
                pending.commit()
        assert _get(service, "big") == blobs["big"]
        assert not list((root / "spool").iterdir())
        assert not _raw(moto_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads")
    finally:
        service.close()
    report = audit_storage(root, backend=_backend(moto_endpoint, bucket, root))
    assert report.ok and report.objects_checked == 4, report.problems
    raw = _raw(moto_endpoint)
    raw.put_object(Bucket=bucket, Key=f"{PREFIX}/objects/a/s3", Body=b"X" + blobs["s3"][1:])
    raw.put_object(Bucket=bucket, Key=f"{PREFIX}/objects/a/stray", Body=blobs["s2"])
    problems = audit_storage(root, backend=_backend(moto_endpoint, bucket, root)).problems
    assert any(p.startswith("a/s3: stored bytes do not match the index") for p in problems)
    assert "a/stray: stored but not in the index" in problems

    raw.delete_object(Bucket=bucket, Key=f"{PREFIX}/objects/a/s3")
    (root / "spool" / ".tmp-left-behind").write_bytes(b"spooled ciphertext")
    service, report = open_storage(root, backend=_backend(moto_endpoint, bucket, root))
    service.close()
    assert report.removed_temporaries == ["spool/.tmp-left-behind"]
    # no SHA-256 metadata and a header naming another id: never adopted, quarantined
    assert [q.split(" ->")[0] for q in report.quarantined] == ["a/stray"]
    assert report.missing_files == ["a/s3"]
    assert any(k.startswith(f"{PREFIX}/quarantine/a/stray.") for k in _keys(moto_endpoint, bucket))


def test_two_replicas_on_one_bucket(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("a",))
    replicas = [
        open_storage(tmp_path / f"replica{n}", backend=_backend(
            moto_endpoint, bucket, tmp_path / f"replica{n}"))[0]
        for n in (1, 2)
    ]
    ids = [f"race{i}" for i in range(6)]
    candidates = {
        (object_id, n): fed.sealed("a", object_id, f"version {n} of {object_id}".encode() * 500)
        for object_id in ids for n in (0, 1)
    }
    candidates[("race5", 0)] = fed.sealed("a", "race5", os.urandom(6 * MIB))  # multipart
    candidates[("race5", 1)] = fed.sealed("a", "race5", os.urandom(6 * MIB))
    outcomes: dict[tuple[str, int], str] = {}
    try:
        for object_id in ids:
            barrier = threading.Barrier(2)

            def put(n: int, object_id: str = object_id, barrier=barrier) -> None:
                barrier.wait()
                try:
                    _put(replicas[n], candidates[(object_id, n)], object_id)
                    outcomes[(object_id, n)] = "won"
                except ObjectExists:
                    outcomes[(object_id, n)] = "exists"

            threads = [threading.Thread(target=put, args=(n,)) for n in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        winners = {}
        for object_id in ids:
            results = sorted(outcomes[(object_id, n)] for n in (0, 1))
            assert results == ["exists", "won"], (object_id, results)
            winners[object_id] = next(n for n in (0, 1) if outcomes[(object_id, n)] == "won")
        listings = [[r.object_id for r in service.list("a").records] for service in replicas]
        assert listings[0] == listings[1] == ids
        for service in replicas:
            for object_id in ids:
                assert _get(service, object_id) == candidates[(object_id, winners[object_id])]
        replicas[0].delete("a", "", "race0")
        assert [r.object_id for r in replicas[1].list("a").records] == ids[1:]
        with pytest.raises(ObjectMissing):
            replicas[1].get("a", "", "race0")
    finally:
        for service in replicas:
            service.close()
    for n in (1, 2):  # each replica's own audit (index vs bucket) is clean
        report = audit_storage(
            tmp_path / f"replica{n}",
            backend=_backend(moto_endpoint, bucket, tmp_path / f"replica{n}"),
        )
        assert report.ok, report.problems


def test_a_crash_between_upload_and_index_never_shows_a_partial_object(
    moto_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = make_federation(tmp_path, ("a",))
    root = tmp_path / "root"
    big = fed.sealed("a", "big", os.urandom(11 * MIB))
    small = fed.sealed("a", "small", b"acknowledged? no: the index row was never written")
    service, _ = open_storage(root, backend=_backend(moto_endpoint, bucket, root))
    backend = service.backend
    # 1. die after the first multipart part: no cleanup runs (the abort is a no-op here)
    sent = []
    upload_part = backend.s3.upload_part

    def dies_on_second_part(**params):
        if sent:
            raise KeyboardInterrupt("simulated crash")
        sent.append(params["PartNumber"])
        return upload_part(**params)

    monkeypatch.setattr(backend.s3, "upload_part", dies_on_second_part)
    monkeypatch.setattr(backend, "_abort_upload", lambda *_args: None)
    with pytest.raises(KeyboardInterrupt):
        _put(service, big, "big")
    # 2. die after a complete upload, before its index row (the service's cleanup never runs)
    monkeypatch.undo()
    monkeypatch.setattr(service.index, "insert", _crash)
    monkeypatch.setattr(backend, "delete", lambda *_args: None)
    with pytest.raises(KeyboardInterrupt):
        _put(service, small, "small")
    monkeypatch.undo()
    service.close()

    raw = _raw(moto_endpoint)
    assert len(raw.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 1  # parts, invisible
    assert _keys(moto_endpoint, bucket) == {f"{PREFIX}/objects/a/small"}  # complete or absent
    other = open_storage(tmp_path / "other", backend=_backend(moto_endpoint, bucket,
                                                               tmp_path / "other"))[0]
    try:
        with pytest.raises(ObjectMissing):
            other.get("a", "", "big")
        assert _get(other, "small") == small
    finally:
        other.close()

    service, report = open_storage(root, backend=_backend(moto_endpoint, bucket, root))
    try:
        assert report.removed_temporaries[0] == f"multipart upload of {PREFIX}/objects/a/big"
        assert report.adopted == ["a/small"] and not report.quarantined
        assert not raw.list_multipart_uploads(Bucket=bucket).get("Uploads")
        assert [r.object_id for r in service.list("a").records] == ["small"]
        assert _get(service, "small") == small
    finally:
        service.close()


def _crash(*_args: object) -> None:
    raise KeyboardInterrupt("simulated crash")


def test_s3_failures_are_one_line(moto_endpoint: str, tmp_path: Path) -> None:
    missing = _backend(moto_endpoint, "no-such-bucket", tmp_path)
    with pytest.raises(S3Error, match=r"^S3 list_objects_v2 fedcodec/objects/: HTTP 404 "
                                      r"NoSuchBucket$"):
        list(missing.scan())
    nowhere = S3Settings("http://127.0.0.1:9", BUCKET, access_key="k", secret_key="s",
                         timeout=2, max_attempts=1)
    with pytest.raises(S3Error, match="S3 endpoint http://127.0.0.1:9 unreachable"):
        S3Backend(nowhere, tmp_path).delete("a", "x")
    with pytest.raises(Exception, match="invalid S3 endpoint"):
        S3Backend(S3Settings("ftp://x", BUCKET), tmp_path)


def test_grpc_service_over_s3(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("a",))
    root = tmp_path / "root"
    running = start_storage_server(
        root, fed.server_tls, backend=_backend(moto_endpoint, bucket, root)
    )
    try:
        with fed.client("a", running.port) as client:
            blob = fed.sealed("a", "x", b"over grpc and s3")
            client.put_bytes("x", blob)
            assert client.get_bytes("x")[1] == blob
            assert [o.object_id for o in client.list()] == ["x"]
    finally:
        running.stop(grace=0.5)
