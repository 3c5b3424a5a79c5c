"""The S3-compatible backend: SigV4 against AWS's published examples, and the whole service over
a small in-test S3 server (loopback only) that checks every signature and payload hash."""

from __future__ import annotations

import hashlib
import threading
import xml.sax.saxutils as saxutils
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from test_storage_support import make_federation

from fedcodec.server.audit.report import audit_storage
from fedcodec.server.storage.errors import ObjectExists
from fedcodec.server.storage.listener import start_storage_server
from fedcodec.server.storage.root import open_storage
from fedcodec.server.storage.s3_backend import (
    EMPTY_SHA256,
    S3Backend,
    S3Error,
    S3Settings,
    authorization_header,
)
from fedcodec.server.storage.service import PutMetadata
from fedcodec.shared.crypto import envelope

AWS_KEY, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BUCKET = "studies"


@pytest.mark.parametrize(
    ("method", "path", "query", "extra", "body", "signature"),
    [
        ("GET", "/test.txt", {}, {"range": "bytes=0-9"}, b"",
         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        ("GET", "/", {"max-keys": "2", "prefix": "J"}, {}, b"",
         "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
        ("PUT", "/test$file.text", {},
         {"date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
         b"Welcome to Amazon S3.",
         "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
    ],
)
def test_sigv4_matches_the_aws_s3_examples(method, path, query, extra, body, signature) -> None:
    """The three worked examples of AWS's 'Signature Calculations for the Authorization Header'."""
    payload = hashlib.sha256(body).hexdigest()
    headers = {
        "host": "examplebucket.s3.amazonaws.com", "x-amz-date": "20130524T000000Z",
        "x-amz-content-sha256": payload, **extra,
    }
    value = authorization_header(
        method=method, path=path, query=query, headers=headers, payload_sha256=payload,
        access_key=AWS_KEY, secret_key=AWS_SECRET, region="us-east-1", amz_date="20130524T000000Z",
    )
    assert value.endswith(f"Signature={signature}")
    scope = "20130524/us-east-1/s3/aws4_request"
    assert value.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY}/{scope}")


class FakeS3(ThreadingHTTPServer):
    """Path-style S3 subset: PUT (conditional, copy), GET, DELETE, ListObjectsV2 (2 per page)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _S3Handler)
        self.objects: dict[str, bytes] = {}
        self.lock = threading.Lock()


class _S3Handler(BaseHTTPRequestHandler):
    server: FakeS3

    def log_message(self, *_args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", code: str = "") -> None:
        if code:
            body = f"<Error><Code>{code}</Code></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _checked(self) -> tuple[str, dict[str, str], bytes] | None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), dict(parse_qsl(parts.query))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth = self.headers.get("Authorization", "")
        signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
        expected = authorization_header(
            method=self.command, path=path, query=query,
            headers={h: self.headers[h] for h in signed},
            payload_sha256=self.headers["x-amz-content-sha256"], access_key=AWS_KEY,
            secret_key=AWS_SECRET, region="us-east-1", amz_date=self.headers["x-amz-date"],
        )
        if auth != expected:
            self._reply(403, code="SignatureDoesNotMatch")
            return None
        if hashlib.sha256(body).hexdigest() != self.headers["x-amz-content-sha256"]:
            self._reply(400, code="XAmzContentSHA256Mismatch")
            return None
        key = path.removeprefix(f"/{BUCKET}").removeprefix("/")
        return key, query, body

    def do_PUT(self) -> None:  # noqa: N802
        checked = self._checked()
        if checked is None:
            return
        key, _, body = checked
        with self.server.lock:
            source = self.headers.get("x-amz-copy-source")
            if source:
                body = self.server.objects[source.removeprefix(f"/{BUCKET}/")]
            elif self.headers.get("If-None-Match") == "*" and key in self.server.objects:
                return self._reply(412, code="PreconditionFailed")
            self.server.objects[key] = body
        self._reply(200)

    def do_GET(self) -> None:  # noqa: N802
        checked = self._checked()
        if checked is None:
            return
        key, query, _ = checked
        if not key and query.get("list-type") == "2":
            return self._reply(200, self._listing(query))
        with self.server.lock:
            data = self.server.objects.get(key)
        if data is None:
            return self._reply(404, code="NoSuchKey")
        self._reply(200, data)

    def _listing(self, query: dict[str, str]) -> bytes:
        with self.server.lock:
            keys = sorted(k for k in self.server.objects if k.startswith(query.get("prefix", "")))
            sizes = {k: len(self.server.objects[k]) for k in keys}
        start = int(query.get("continuation-token", "0"))
        page = keys[start : start + 2]
        more = start + 2 < len(keys)
        items = "".join(
            f"<Contents><Key>{saxutils.escape(k)}</Key><Size>{sizes[k]}</Size></Contents>"
            for k in page
        )
        tail = f"<NextContinuationToken>{start + 2}</NextContinuationToken>" if more else ""
        return (
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{items}{tail}"
            "</ListBucketResult>"
        ).encode()

    def do_DELETE(self) -> None:  # noqa: N802
        checked = self._checked()
        if checked is None:
            return
        with self.server.lock:
            self.server.objects.pop(checked[0], None)
        self._reply(204)


@pytest.fixture()
def s3() -> Iterator[FakeS3]:
    server = FakeS3()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _backend(s3: FakeS3, root: Path, secret: str = AWS_SECRET) -> S3Backend:
    host, port = s3.server_address[:2]
    settings = S3Settings(f"http://{host}:{port}", BUCKET, "us-east-1", AWS_KEY, secret, "fedcodec")
    return S3Backend(settings, root / "spool")


def _put(service, fed, site: str, object_id: str, data: bytes, replace: bool = False) -> bytes:
    blob = fed.sealed(site, object_id, data) if not replace else data
    meta = PutMetadata(object_id, "", len(blob), hashlib.sha256(blob).digest(), replace)
    service.put(site, meta, [blob[i : i + 40_000] for i in range(0, len(blob), 40_000)])
    return blob


def test_service_rules_hold_over_s3(s3: FakeS3, tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("a", "b"))
    root = tmp_path / "root"
    service, _ = open_storage(root, backend=_backend(s3, root))
    try:
        blobs = {f"s{i}": _put(service, fed, "a", f"s{i}", bytes([i]) * 100_000) for i in range(5)}
        assert set(s3.objects) == {f"fedcodec/objects/a/s{i}" for i in range(5)}
        for object_id, blob in blobs.items():
            _, stream = service.get("a", "", object_id)
            assert b"".join(stream) == blob
        fed.keyrings["a"].import_peer("b", fed.keyrings["b"].public_key_bytes())
        header = envelope.share(blobs["s0"], fed.keyrings["a"], "b")
        shared = envelope.replace_header(blobs["s0"], header)
        _put(service, fed, "a", "s0", shared, replace=True)
        assert s3.objects["fedcodec/objects/a/s0"] == shared
        service.delete("a", "", "s1")
        assert "fedcodec/objects/a/s1" not in s3.objects
        assert not list((root / "spool").iterdir())
        pending = service.backend.begin("a", "s2")
        pending.write(b"another version")
        with pytest.raises(ObjectExists):
            pending.commit()  # If-None-Match: * answered 412
        assert s3.objects["fedcodec/objects/a/s2"] == blobs["s2"]
    finally:
        service.close()
    report = audit_storage(root, backend=_backend(s3, root))
    assert report.ok and report.objects_checked == 4, report.problems
    s3.objects["fedcodec/objects/a/s3"] = b"X" + blobs["s3"][1:]
    s3.objects["fedcodec/objects/a/stray"] = blobs["s4"]
    problems = audit_storage(root, backend=_backend(s3, root)).problems
    assert any(p.startswith("a/s3: stored bytes do not match the index") for p in problems)
    assert "a/stray: stored but not in the index" in problems

    del s3.objects["fedcodec/objects/a/s3"]
    (root / "spool" / ".tmp-left-behind").write_bytes(b"spooled ciphertext")
    service, report = open_storage(root, backend=_backend(s3, root))
    service.close()
    assert report.removed_temporaries == ["spool/.tmp-left-behind"]
    assert [q.split(" ->")[0] for q in report.quarantined] == ["a/stray"]
    assert report.missing_files == ["a/s3"]
    assert any(k.startswith("fedcodec/quarantine/a/stray.") for k in s3.objects)


def test_s3_refusals_are_one_line(s3: FakeS3, tmp_path: Path) -> None:
    backend = _backend(s3, tmp_path, secret="wrong")
    with pytest.raises(S3Error, match="^S3 GET : HTTP 403 SignatureDoesNotMatch$"):
        list(backend.scan())
    nowhere = S3Settings("http://127.0.0.1:9", BUCKET, access_key="k", secret_key="s")
    unreachable = S3Backend(nowhere, tmp_path)
    with pytest.raises(S3Error, match="S3 endpoint http://127.0.0.1:9 unreachable"):
        unreachable.delete("a", "x")
    assert EMPTY_SHA256 == hashlib.sha256(b"").hexdigest()


def test_grpc_service_over_s3(s3: FakeS3, tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("a",))
    root = tmp_path / "root"
    running = start_storage_server(root, fed.server_tls, backend=_backend(s3, root))
    try:
        with fed.client("a", running.port) as client:
            blob = fed.sealed("a", "x", b"over grpc and s3")
            client.put_bytes("x", blob)
            assert client.get_bytes("x")[1] == blob
    finally:
        running.stop(grace=0.5)
