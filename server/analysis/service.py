"""``AnalysisService``: evaluate deployed heads on encrypted features, per-site public contexts.

The service never holds a secret key: :func:`~fedcodec.shared.analysis.ckks.load_public_context`
refuses a context that carries one, so nothing here *can* decrypt. Contexts are registered once
per site (bounded, least recently used first out) and named by their SHA-256; a site can only
use the contexts it registered itself (the site comes from its TLS certificate).

Every refusal is a :mod:`.errors` class with a one-line reason; a bad request never takes the
service down (TenSEAL's parse errors are caught and reported as INVALID_ARGUMENT).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import tenseal as ts

from fedcodec.server.analysis.errors import BadRequest, ModelMismatch, TooLarge, UnknownContext
from fedcodec.shared.analysis.ckks import context_hash, load_public_context
from fedcodec.shared.analysis.heads import HEAD_KINDS, Head, HeadCard, head_path, load_head
from fedcodec.shared.analysis.wire import AnalysisLimits
from fedcodec.shared.errors import CorruptDataError, FedcodecError

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Evaluation:
    """What the service returns for one request."""

    scores: bytes
    model_hash: str
    features_sha256: str
    evaluate_ms: float


@dataclass(frozen=True)
class _SiteContext:
    context: ts.Context
    head: str


class AnalysisService:
    """Deployed heads (by kind) and the public contexts sites registered."""

    def __init__(
        self, heads: dict[str, Head], limits: AnalysisLimits = AnalysisLimits(), n_threads: int = 2
    ) -> None:
        if not heads:
            raise FedcodecError("the analysis service needs at least one head")
        self.heads = heads
        self.cards: dict[str, HeadCard] = {kind: head.card() for kind, head in heads.items()}
        self.limits = limits
        self.n_threads = n_threads
        self.default_head = next(iter(heads))
        self._contexts: dict[str, OrderedDict[str, _SiteContext]] = {}
        self._lock = threading.Lock()
        self._evaluating = threading.BoundedSemaphore(max(1, limits.max_workers // 2))

    @classmethod
    def from_model_dir(cls, model_dir: Path, limits: AnalysisLimits = AnalysisLimits()):
        """Load every ``head-*.json`` in ``model_dir`` (written by ``fedcodec analyze train``)."""
        heads = {k: load_head(head_path(model_dir, k)) for k in HEAD_KINDS
                 if head_path(model_dir, k).exists()}
        if not heads:
            raise FedcodecError(f"no head-linear.json or head-poly-mlp.json in {model_dir}")
        return cls(heads, limits)

    def _head(self, kind: str) -> str:
        kind = kind or self.default_head
        if kind not in self.heads:
            raise UnknownContext(f"no head {kind!r} deployed; deployed: {', '.join(self.heads)}")
        return kind

    def describe(self, kind: str) -> HeadCard:
        return self.cards[self._head(kind)]

    def register_context(self, site: str, data: bytes, kind: str, digest: str = "") -> str:
        """Cache a site's public context by SHA-256; with empty ``data``, say whether the
        context ``digest`` is still cached for this site (UnknownContext if not)."""
        kind = self._head(kind)
        if not data:
            if not digest:
                raise BadRequest("no context and no context_hash in the request")
            entry = self._context(site, digest)
            if entry.head != kind:
                raise ModelMismatch(f"context {digest[:16]}... was registered for head "
                                    f"{entry.head!r}, not {kind!r}")
            return digest
        if len(data) > self.limits.max_context_bytes:
            raise TooLarge(
                f"context of {len(data)} bytes exceeds {self.limits.max_context_bytes} bytes"
            )
        try:
            head = self.heads[kind]
            context = load_public_context(data, head.profile, self.n_threads,
                                          features=head.feature_count)
        except FedcodecError as exc:
            raise BadRequest(str(exc)) from None
        digest = context_hash(data)
        with self._lock:
            mine = self._contexts.setdefault(site, OrderedDict())
            mine[digest] = _SiteContext(context, kind)
            mine.move_to_end(digest)
            while len(mine) > self.limits.max_contexts_per_site:
                mine.popitem(last=False)
        return digest

    def _context(self, site: str, digest: str) -> _SiteContext:
        with self._lock:
            mine = self._contexts.get(site, OrderedDict())
            found = mine.get(digest)
            if found is None:
                raise UnknownContext(
                    f"no context {digest[:16]!r}... registered by site {site!r} "
                    "(register it first; the service keeps the last "
                    f"{self.limits.max_contexts_per_site} per site)"
                )
            mine.move_to_end(digest)
            return found

    def evaluate(
        self,
        site: str,
        *,
        request_id: str,
        context_digest: str,
        kind: str,
        model_hash: str,
        batch_size: int,
        features: bytes,
    ) -> Evaluation:
        """Check the request against the limits and the head, then evaluate homomorphically."""
        if not REQUEST_ID.match(request_id):
            raise BadRequest("request_id must be 32 lowercase hex digits (128 random bits)")
        kind = self._head(kind)
        head, card = self.heads[kind], self.cards[kind]
        if model_hash and model_hash != card.model_hash:
            raise ModelMismatch(
                f"the site pinned model {model_hash[:16]}..., the service runs "
                f"{card.model_hash[:16]}... for head {kind!r}"
            )
        if not 0 < batch_size <= min(self.limits.max_batch, card.profile.slots):
            raise TooLarge(
                f"batch of {batch_size} slots; the {kind} head takes 1 to "
                f"{min(self.limits.max_batch, card.profile.slots)}"
            )
        if len(features) > self.limits.max_request_bytes:
            raise TooLarge(
                f"features of {len(features)} bytes exceed {self.limits.max_request_bytes} bytes"
            )
        if not features:
            raise BadRequest("no feature ciphertext in the request")
        entry = self._context(site, context_digest)
        if entry.head != kind:
            raise ModelMismatch(
                f"context {context_digest[:16]}... was registered for head {entry.head!r}, "
                f"not {kind!r}"
            )
        with self._evaluating:
            start = time.perf_counter()
            try:
                scores = head.evaluate_bytes(entry.context, features, batch_size)
            except CorruptDataError as exc:
                raise BadRequest(str(exc)) from None
            except FedcodecError as exc:  # wrong shape for this head
                raise BadRequest(str(exc)) from None
            except (ValueError, RuntimeError, TypeError) as exc:
                raise BadRequest(f"cannot evaluate on these ciphertexts ({exc})") from None
            elapsed = (time.perf_counter() - start) * 1000.0
        return Evaluation(scores, card.model_hash, hashlib.sha256(features).hexdigest(), elapsed)
