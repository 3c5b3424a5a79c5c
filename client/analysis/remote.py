"""``AnalysisClient``: encrypted inference on the analysis service, with result authentication.

The site keeps its CKKS secret key; the service gets the public context once (by hash after
that, also across sessions with :class:`KeptContext`), packed feature ciphertexts (S studies
each) per request, and returns encrypted scores. Every reply is
checked twice before a score is used (see :mod:`fedcodec.shared.analysis.result_check`): the
echoed binding (request id, context hash, model hash, batch, feature hash) and the known-answer
check slots hidden among the studies.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import tenseal as ts

from fedcodec.client.site_tls import site_channel
from fedcodec.shared.analysis.ckks import (
    check_context_parameters,
    context_hash,
    decrypt_batch,
    encrypt_batch,
    new_site_context,
    public_context_bytes,
)
from fedcodec.shared.analysis.heads import HeadCard
from fedcodec.shared.analysis.result_check import (
    DEFAULT_CHECKS,
    Binding,
    check_binding,
    new_request_id,
    plan_batch,
    verify_scores,
)
from fedcodec.shared.analysis.wire import AnalysisLimits, card_from_message
from fedcodec.shared.errors import CorruptDataError, FedcodecError, UnknownNameError
from fedcodec.shared.rpc import analysis_pb2, analysis_pb2_grpc


class AnalysisUnavailable(FedcodecError):
    """The service could not be reached or refused the TLS handshake."""


def analysis_failure(exc: grpc.RpcError, service: str) -> FedcodecError:
    """One-line error for a failed call."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return AnalysisUnavailable(f"analysis service at {service} is unreachable ({details})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return AnalysisUnavailable(f"analysis service at {service} did not answer in time")
    if code == grpc.StatusCode.NOT_FOUND:
        return UnknownNameError(f"analysis service: {details}")
    return FedcodecError(f"analysis service refused the call ({code.name}): {details}")


@dataclass
class RemoteStats:
    """What one encrypted classification cost (for the experiment and the CLI)."""

    studies: int = 0
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    context_bytes: int = 0
    encrypt_ms: float = 0.0
    server_evaluate_ms: float = 0.0
    round_trip_ms: float = 0.0
    decrypt_ms: float = 0.0
    batches: list[int] = field(default_factory=list)


class AnalysisClient:
    """Calls to the analysis service as this site; use as a context manager."""

    def __init__(
        self,
        service: str,
        tls_dir: Path,
        *,
        timeout: float = 600.0,
        limits: AnalysisLimits = AnalysisLimits(),
    ) -> None:
        self.service = service
        self.timeout = timeout
        self.site, self._channel = site_channel(
            service, Path(tls_dir), max_message_bytes=limits.max_message_bytes
        )
        self._stub = analysis_pb2_grpc.AnalysisStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AnalysisClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise analysis_failure(exc, self.service) from None

    def describe(self, head: str = "") -> tuple[HeadCard, int]:
        """The deployed head's public card and the largest batch the service takes."""
        reply = self._call(self._stub.DescribeModel, analysis_pb2.DescribeModelRequest(head=head))
        return card_from_message(reply), reply.max_batch

    def has_context(self, digest: str, head: str) -> bool:
        """Whether the service still caches the public context ``digest`` for this site."""
        try:
            reply = self._stub.RegisterContext(
                analysis_pb2.RegisterContextRequest(context_hash=digest, head=head),
                timeout=self.timeout,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise analysis_failure(exc, self.service) from None
        return reply.context_hash == digest

    def register_context(self, public_context: bytes, head: str) -> str:
        reply = self._call(
            self._stub.RegisterContext,
            analysis_pb2.RegisterContextRequest(context=public_context, head=head),
        )
        if reply.context_hash != context_hash(public_context):
            raise CorruptDataError("the service acknowledged a different context than was sent")
        return reply.context_hash

    def evaluate(self, request: analysis_pb2.EvaluateRequest) -> analysis_pb2.EvaluateReply:
        return self._call(self._stub.Evaluate, request)


class KeptContext:
    """A site's CKKS context kept between sessions (``analyze remote --keep-context FILE``).

    The file holds the **secret key** (mode 0600, written atomically) and, beside it
    (``FILE.sha256``), the hash under which the service cached the public part. The next session
    asks the service for that hash and uploads the public context (tens of MB with Galois keys)
    only if the service no longer has it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.digest_path = self.path.with_name(self.path.name + ".sha256")

    def load(self, profile, n_threads: int) -> tuple[ts.Context, str] | None:
        if not self.path.exists():
            return None
        try:
            context = ts.context_from(self.path.read_bytes(), n_threads=n_threads)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise CorruptDataError(f"kept context {self.path} is unreadable ({exc})") from None
        if not context.is_private():
            raise CorruptDataError(f"kept context {self.path} has no secret key")
        try:
            check_context_parameters(context, profile)
        except FedcodecError:
            return None  # another head's profile: start a new one (overwritten on save)
        digest = self.digest_path.read_text().strip() if self.digest_path.exists() else ""
        return context, digest

    def save(self, context: ts.Context, digest: str) -> None:
        import os
        import tempfile

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "wb") as handle:  # mkstemp: mode 0600
            handle.write(context.serialize(save_secret_key=True, save_galois_keys=True))
        os.replace(tmp, self.path)
        self.digest_path.write_text(digest + "\n")


class EncryptedClassifier:
    """A site's CKKS session with one deployed head: encrypt, evaluate remotely, check, decrypt."""

    def __init__(
        self,
        client: AnalysisClient,
        head: str = "",
        *,
        pinned_model_hash: str = "",
        checks: int = DEFAULT_CHECKS,
        n_threads: int = 2,
        keep_context: Path | None = None,
    ) -> None:
        self.client = client
        self.card, self.max_batch = client.describe(head)
        if pinned_model_hash and pinned_model_hash != self.card.model_hash:
            raise CorruptDataError(
                f"the service runs model {self.card.model_hash[:16]}..., this site pinned "
                f"{pinned_model_hash[:16]}..."
            )
        self.checks = checks
        self.stats = RemoteStats()
        kept = KeptContext(keep_context) if keep_context else None
        loaded = kept.load(self.card.profile, n_threads) if kept else None
        if loaded and loaded[1] and client.has_context(loaded[1], self.card.kind):
            self.context, self.context_hash = loaded  # the service still has it: send nothing
            return
        self.context = loaded[0] if loaded else new_site_context(self.card.profile, n_threads)
        public = public_context_bytes(self.context, self.card.feature_count)
        self.context_hash = client.register_context(public, self.card.kind)
        self.stats.context_bytes = len(public)
        if kept:
            kept.save(self.context, self.context_hash)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(B, F) plaintext features -> (B, classes) decrypted, verified scores."""
        features = np.asarray(features, dtype=np.float64)
        per_request = self.max_batch - self.checks
        if per_request < 1:
            raise FedcodecError(f"the service's batch limit {self.max_batch} leaves no room")
        parts = [
            self._one_request(features[i : i + per_request])
            for i in range(0, len(features), per_request)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.card.class_names)))

    def _one_request(self, features: np.ndarray) -> np.ndarray:
        stats = self.stats
        slots, plan = plan_batch(self.card, features, self.checks)
        start = time.perf_counter()
        blob = encrypt_batch(self.context, slots)
        stats.encrypt_ms += (time.perf_counter() - start) * 1000.0
        request = analysis_pb2.EvaluateRequest(
            request_id=new_request_id(),
            context_hash=self.context_hash,
            head=self.card.kind,
            model_hash=self.card.model_hash,
            batch_size=plan.batch_size,
            features=blob,
        )
        start = time.perf_counter()
        reply = self.client.evaluate(request)
        stats.round_trip_ms += (time.perf_counter() - start) * 1000.0
        stats.server_evaluate_ms += reply.evaluate_ms
        stats.bytes_sent += request.ByteSize()
        stats.bytes_received += reply.ByteSize()
        stats.requests += 1
        stats.studies += len(features)
        stats.batches.append(plan.batch_size)
        expected = Binding(
            request.request_id, self.context_hash, self.card.model_hash, plan.batch_size,
            hashlib.sha256(blob).hexdigest(),
        )
        received = Binding(
            reply.request_id, reply.context_hash, reply.model_hash, reply.batch_size,
            reply.features_sha256,
        )
        check_binding(expected, received)
        start = time.perf_counter()
        decrypted = decrypt_batch(
            self.context, reply.scores, plan.batch_size, len(self.card.class_names)
        )
        stats.decrypt_ms += (time.perf_counter() - start) * 1000.0
        return verify_scores(plan, decrypted)
