"""The analysis service over real mutual TLS: encrypted results, clear errors, still serving."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from test_analysis_support import FEATURES, seeded_head, study_features

from fedcodec.client.analysis.remote import AnalysisClient, EncryptedClassifier
from fedcodec.server import pki
from fedcodec.server.analysis.listener import start_analysis_server
from fedcodec.server.analysis.service import AnalysisService
from fedcodec.shared.analysis.ckks import (
    PROFILES,
    encrypt_batch,
    new_site_context,
    public_context_bytes,
)
from fedcodec.shared.analysis.heads import LINEAR, POLY_MLP
from fedcodec.shared.analysis.result_check import new_request_id
from fedcodec.shared.analysis.wire import AnalysisLimits
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.rpc import analysis_pb2, analysis_pb2_grpc

LIMITS = AnalysisLimits(max_request_bytes=12 * 1024 * 1024, max_batch=256)


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    base = tmp_path_factory.mktemp("analysis-pki")
    pki.init_ca(base / "ca")
    pki.issue_server(base / "ca", base / "server")
    for site in ("a", "b"):
        pki.issue_site(base / "ca", base / f"site-{site}", site)
    service = AnalysisService({LINEAR: seeded_head(LINEAR), POLY_MLP: seeded_head(POLY_MLP)},
                              LIMITS)
    running = start_analysis_server(service, base / "server")
    yield base, running
    running.stop(grace=1.0)


def _client(federation, site="a") -> AnalysisClient:
    base, running = federation
    return AnalysisClient(f"127.0.0.1:{running.port}", base / f"site-{site}", timeout=60,
                          limits=LIMITS)


def _raw_stub(federation, site="a"):
    client = _client(federation, site)
    return client, analysis_pb2_grpc.AnalysisStub(client._channel)


@pytest.mark.parametrize("kind", [LINEAR, POLY_MLP])
def test_remote_scores_match_plaintext(federation, kind) -> None:
    head = seeded_head(kind)
    features = study_features(head, 300)  # > one batch of 256: two requests
    with _client(federation) as client:
        session = EncryptedClassifier(client, kind, pinned_model_hash=head.model_hash())
        scores = session.scores(features)
    plain = head.plain_scores(features)
    assert scores.shape == (300, 3)
    assert (scores.argmax(1) == plain.argmax(1)).mean() >= 0.995
    assert session.stats.requests == 2 and session.stats.studies == 300
    assert session.stats.bytes_sent > 0 and session.stats.server_evaluate_ms > 0


def test_pinned_model_mismatch_refused(federation) -> None:
    with _client(federation) as client, pytest.raises(CorruptDataError, match="pinned"):
        EncryptedClassifier(client, LINEAR, pinned_model_hash="0" * 64)


def _registered(stub, kind=LINEAR):
    context = new_site_context(PROFILES["linear-packed-8192" if kind == LINEAR else "mlp-8192"])
    reply = stub.RegisterContext(
        analysis_pb2.RegisterContextRequest(context=public_context_bytes(context, FEATURES),
                                            head=kind)
    )
    return context, reply.context_hash


def _evaluate(stub, context_hash, features: bytes, batch: int, **extra):
    return stub.Evaluate(analysis_pb2.EvaluateRequest(
        request_id=extra.pop("request_id", new_request_id()), context_hash=context_hash,
        head=extra.pop("head", LINEAR), batch_size=batch, features=features, **extra,
    ))


def _status(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_bad_requests_get_clear_errors_and_service_keeps_serving(federation) -> None:
    client, stub = _raw_stub(federation)
    with client:
        context, digest = _registered(stub)
        good = encrypt_batch(context, study_features(seeded_head(LINEAR), 5))
        cases = {
            "malformed ciphertext": lambda: _evaluate(stub, digest, b"\x01garbage" * 50, 5),
            "oversized batch": lambda: _evaluate(stub, digest, good, 5000),
            "unknown context": lambda: _evaluate(stub, "f" * 64, good, 5),
            "secret-key context": lambda: stub.RegisterContext(analysis_pb2.RegisterContextRequest(
                context=context.serialize(save_secret_key=True), head=LINEAR)),
            "wrong-profile context": lambda: stub.RegisterContext(
                analysis_pb2.RegisterContextRequest(
                    context=public_context_bytes(new_site_context(PROFILES["mlp-8192"]),
                                                 FEATURES),
                    head=LINEAR)),
            "ciphertext of other parameters": lambda: _evaluate(
                stub, digest, encrypt_batch(new_site_context(PROFILES["mlp-8192"]),
                                            np.ones((5, 4))), 5),
            # a packed ciphertext always fills its slots, so a wrong feature count is caught by
            # the site's known-answer check; a wrong packing (vector size) is caught here
            "wrong feature count": lambda: _evaluate(
                stub, digest, encrypt_batch(context, np.ones((5, 24)), per_ciphertext=64), 5),
            "bad request id": lambda: _evaluate(stub, digest, good, 5, request_id="1"),
            "pinned other model": lambda: _evaluate(stub, digest, good, 5, model_hash="ab" * 32),
            "oversized request": lambda: _evaluate(stub, digest, b"\0" * (13 * 1024 * 1024), 5),
        }
        expected = {
            "malformed ciphertext": (grpc.StatusCode.INVALID_ARGUMENT, "malformed feature"),
            "oversized batch": (grpc.StatusCode.RESOURCE_EXHAUSTED, "batch of 5000 slots"),
            "unknown context": (grpc.StatusCode.NOT_FOUND, "register it first"),
            "secret-key context": (grpc.StatusCode.INVALID_ARGUMENT, "holds a secret key"),
            "wrong-profile context": (grpc.StatusCode.INVALID_ARGUMENT, "wrong CKKS context"),
            "ciphertext of other parameters": (grpc.StatusCode.INVALID_ARGUMENT, "malformed"),
            "wrong feature count": (grpc.StatusCode.INVALID_ARGUMENT, "takes [24]"),
            "bad request id": (grpc.StatusCode.INVALID_ARGUMENT, "request_id"),
            "pinned other model": (grpc.StatusCode.FAILED_PRECONDITION, "pinned model"),
            "oversized request": (grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        }
        for name, call in cases.items():
            code, details = _status(call)
            assert code == expected[name][0], (name, code, details)
            assert expected[name][1] in details, (name, details)
            assert "\n" not in details
        reply = _evaluate(stub, digest, good, 5)  # still serving, same connection
        assert reply.batch_size == 5 and reply.scores


def test_sites_cannot_use_each_others_contexts(federation) -> None:
    client_a, stub_a = _raw_stub(federation, "a")
    client_b, stub_b = _raw_stub(federation, "b")
    with client_a, client_b:
        context, digest = _registered(stub_a)
        features = encrypt_batch(context, np.ones((3, 24)))
        code, details = _status(lambda: _evaluate(stub_b, digest, features, 3))
        assert code == grpc.StatusCode.NOT_FOUND and "site 'b'" in details


def test_replayed_reply_is_rejected(federation) -> None:
    head = seeded_head(LINEAR)
    features = study_features(head, 20)
    with _client(federation) as client:
        session = EncryptedClassifier(client, LINEAR)
        real_evaluate = client.evaluate
        recorded = []

        def replaying(request):
            reply = real_evaluate(request)
            if not recorded:
                recorded.append(reply)
                return reply
            old = analysis_pb2.EvaluateReply()
            old.CopyFrom(recorded[0])
            old.request_id = request.request_id  # an attacker can rewrite plaintext fields ...
            import hashlib

            old.features_sha256 = hashlib.sha256(request.features).hexdigest()
            return old  # ... but not the encrypted check slots

        client.evaluate = replaying
        session.scores(features)
        with pytest.raises(CorruptDataError, match="known-answer check"):
            session.scores(features)


def test_no_client_certificate_no_service(federation) -> None:
    base, running = federation
    channel = grpc.secure_channel(
        f"127.0.0.1:{running.port}",
        grpc.ssl_channel_credentials((base / "site-a" / "ca.pem").read_bytes()),
    )
    stub = analysis_pb2_grpc.AnalysisStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.DescribeModel(analysis_pb2.DescribeModelRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


def test_unknown_head_is_a_one_line_error(federation) -> None:
    with _client(federation) as client, pytest.raises(FedcodecError, match="no head 'tree'"):
        client.describe("tree")


def test_fedcodec_server_analysis_command_serves_and_stops(federation, tmp_path) -> None:
    import re
    import signal
    import subprocess
    import sys
    import time

    from fedcodec.shared.analysis.heads import head_path

    base, _ = federation
    for kind in (LINEAR, POLY_MLP):
        seeded_head(kind).save(head_path(tmp_path / "model", kind))
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedcodec.server.cli", "analysis", "--model",
             str(tmp_path / "model"), "--tls-dir", str(base / "server"), "--port", "0"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"listening on [\d.]+:(\d+)", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        port = int(found.group(1))
        with AnalysisClient(f"127.0.0.1:{port}", base / "site-a", timeout=30) as client:
            card, max_batch = client.describe("poly-mlp")
        assert card.model_hash == seeded_head(POLY_MLP).model_hash() and max_batch == 4096
        assert "mlp-8192" in log.read_text() and "128-bit security" in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_context_is_cached_by_hash_and_kept_between_sessions(federation, tmp_path) -> None:
    """Session 1 uploads the public context (Galois keys: tens of MB) once; session 2, with the
    kept context, only names it by hash; an unknown hash is NOT_FOUND."""
    head = seeded_head(LINEAR)
    features = study_features(head, 10)
    kept = tmp_path / "site.ctx"
    with _client(federation) as client:
        first = EncryptedClassifier(client, LINEAR, keep_context=kept)
        scores = first.scores(features)
        assert first.stats.context_bytes > 1_000_000 and first.stats.requests == 1
        assert kept.stat().st_mode & 0o777 == 0o600
        assert not client.has_context("0" * 64, LINEAR)
    with _client(federation) as client:
        second = EncryptedClassifier(client, LINEAR, keep_context=kept)
        assert second.context_hash == first.context_hash
        assert second.stats.context_bytes == 0
        np.testing.assert_allclose(second.scores(features), scores, atol=2e-3)
    client_b, stub_b = _raw_stub(federation, "b")
    with client_b:  # another site cannot probe (or use) site a's context
        code, _ = _status(lambda: stub_b.RegisterContext(analysis_pb2.RegisterContextRequest(
            context_hash=first.context_hash, head=LINEAR)))
        assert code == grpc.StatusCode.NOT_FOUND
