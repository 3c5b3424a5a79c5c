"""``AnalysisServicer``: gRPC in, :class:`~.service.AnalysisService` calls, statuses out."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc

from fedcodec.server.analysis import errors
from fedcodec.server.analysis.service import AnalysisService
from fedcodec.server.storage.errors import Unauthenticated
from fedcodec.server.storage.identity import site_of
from fedcodec.shared.analysis.wire import card_message
from fedcodec.shared.rpc import analysis_pb2, analysis_pb2_grpc

T = TypeVar("T")

STATUS = {
    errors.BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.UnknownContext: grpc.StatusCode.NOT_FOUND,
    errors.ModelMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}


def _answer(context: grpc.ServicerContext, work: Callable[[], T]) -> T:
    """Run ``work``; turn a refusal into its gRPC status with a one-line reason."""
    try:
        return work()
    except (errors.AnalysisRefusal, Unauthenticated) as exc:
        context.abort(STATUS.get(type(exc), grpc.StatusCode.INVALID_ARGUMENT), str(exc))
    raise AssertionError("unreachable: context.abort raises")


class AnalysisServicer(analysis_pb2_grpc.AnalysisServicer):
    """The ``fedcodec.analysis.v1.Analysis`` service over an :class:`AnalysisService`."""

    def __init__(self, service: AnalysisService) -> None:
        self.service = service

    def DescribeModel(self, request, context):
        _answer(context, lambda: site_of(context))
        card = _answer(context, lambda: self.service.describe(request.head))
        return card_message(card, self.service.limits)

    def RegisterContext(self, request, context):
        site = _answer(context, lambda: site_of(context))
        digest = _answer(
            context, lambda: self.service.register_context(
                site, request.context, request.head, request.context_hash)
        )
        return analysis_pb2.RegisterContextReply(context_hash=digest)

    def Evaluate(self, request, context):
        site = _answer(context, lambda: site_of(context))
        result = _answer(
            context,
            lambda: self.service.evaluate(
                site,
                request_id=request.request_id,
                context_digest=request.context_hash,
                kind=request.head,
                model_hash=request.model_hash,
                batch_size=request.batch_size,
                features=request.features,
            ),
        )
        return analysis_pb2.EvaluateReply(
            request_id=request.request_id,
            context_hash=request.context_hash,
            model_hash=result.model_hash,
            features_sha256=result.features_sha256,
            batch_size=request.batch_size,
            scores=result.scores,
            evaluate_ms=result.evaluate_ms,
        )
