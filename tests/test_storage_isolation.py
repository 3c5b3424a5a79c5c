"""Must-show: over real mutual TLS, site A can neither read, list nor delete site B's objects.

The site is whatever the client certificate says; no request field can change it. A denial is
PERMISSION_DENIED for existing and non-existing ids alike, so A learns nothing about B's ids.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest
from test_storage_support import make_federation, running_service

from fedcodec.client.store.connection import StoreAccessDenied
from fedcodec.client.store.transfer import share_object
from fedcodec.shared.crypto import envelope
from fedcodec.shared.errors import UnknownNameError
from fedcodec.shared.rpc import storage_pb2, storage_pb2_grpc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("isolation")
    fed = make_federation(base, ("a", "b"))
    fed.keyrings["a"].import_peer("b", fed.keyrings["b"].public_key_bytes())
    with running_service(fed, base / "root") as running:
        yield fed, running


def _raw_stub(fed, site: str, port: int) -> storage_pb2_grpc.StorageStub:
    """A bare gRPC stub with ``site``'s certificate (no client-side checks in between)."""
    tls = fed.site_tls[site]
    creds = grpc.ssl_channel_credentials(
        (tls / "ca.pem").read_bytes(),
        (tls / "site.key").read_bytes(),
        (tls / "site.pem").read_bytes(),
    )
    return storage_pb2_grpc.StorageStub(grpc.secure_channel(f"127.0.0.1:{port}", creds))


def test_site_a_cannot_read_list_or_delete_site_b_objects(world) -> None:
    fed, running = world
    blob = fed.sealed("b", "b-study", b"site b's study")
    with fed.client("b", running.port) as b:
        assert b.put_bytes("b-study", blob).owner == "b"
    stub = _raw_stub(fed, "a", running.port)
    get, delete = storage_pb2.GetRequest, storage_pb2.DeleteRequest
    calls = {
        "get": lambda oid: list(stub.Get(get(owner="b", object_id=oid), timeout=10)),
        "list": lambda oid: stub.List(storage_pb2.ListRequest(owner="b"), timeout=10),
        "delete": lambda oid: stub.Delete(delete(owner="b", object_id=oid), timeout=10),
    }
    for name, call in calls.items():
        for object_id in ("b-study", "no-such-object"):
            with pytest.raises(grpc.RpcError) as caught:
                call(object_id)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, (name, object_id)
    with fed.client("a", running.port) as a:
        assert a.list() == []
        denied = "permission denied: site 'a' may not read b/b-study"
        with pytest.raises(StoreAccessDenied, match=denied):
            a.get_bytes("b-study", owner="b")
        with pytest.raises(UnknownNameError, match="no object 'b-study' in namespace 'a'"):
            a.get_bytes("b-study")  # asking in its own namespace finds nothing
    with fed.client("b", running.port) as b:
        info, data = b.get_bytes("b-study")
        assert data == blob and [o.object_id for o in b.list()] == ["b-study"]


def test_identity_comes_from_the_certificate_not_the_request(world) -> None:
    """Naming another namespace in a Put is refused; the object lands nowhere."""
    fed, running = world
    blob = fed.sealed("a", "spoof", b"a pretending to be b")
    stub = _raw_stub(fed, "a", running.port)

    def messages():
        meta = storage_pb2.PutMetadata(
            object_id="spoof", namespace="b", size=len(blob), sha256=hashlib.sha256(blob).digest()
        )
        yield storage_pb2.PutChunk(metadata=meta)
        yield storage_pb2.PutChunk(data=blob)

    with pytest.raises(grpc.RpcError) as caught:
        stub.Put(messages(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with fed.client("b", running.port) as b:
        assert "spoof" not in [o.object_id for o in b.list()]


def test_sharing_lets_b_read_and_decrypt_then_revoking_stops_it(world, tmp_path: Path) -> None:
    fed, running = world
    with fed.client("a", running.port) as a, fed.client("b", running.port) as b:
        b.list()  # b has connected: a known site
        a.put_bytes("a-study", fed.sealed("a", "a-study", b"for b's eyes"))
        with pytest.raises(StoreAccessDenied):
            b.get_bytes("a-study", owner="a")
        info = share_object(a, fed.keyrings["a"], "a-study", "b")
        assert info.shared_with == ("b",)
        assert [(o.owner, o.object_id) for o in b.list(shared_with_me=True)] == [("a", "a-study")]
        _, blob = b.get_bytes("a-study", owner="a")
        assert envelope.decrypt_bytes(blob, fed.keyrings["b"])[1] == b"for b's eyes"
        with pytest.raises(StoreAccessDenied):
            b.delete("a-study", owner="a")
        share_object(a, fed.keyrings["a"], "a-study", "b", revoke=True)
        with pytest.raises(StoreAccessDenied):
            b.get_bytes("a-study", owner="a")
        _, blob = a.get_bytes("a-study")
        assert "b" not in envelope.read_header(blob).recipient_sites
