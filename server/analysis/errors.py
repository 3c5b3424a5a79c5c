"""Why the analysis service refused a call: one class per gRPC status the servicer returns.

Plain exceptions so :class:`~.service.AnalysisService` is testable without a network;
:mod:`.servicer` maps each to its status code.
"""

from __future__ import annotations

from fedcodec.shared.errors import FedcodecError


class AnalysisRefusal(FedcodecError):
    """A request the service refused (it keeps serving)."""


class BadRequest(AnalysisRefusal):
    """Malformed ciphertext or context, wrong shape, bad id (INVALID_ARGUMENT)."""


class UnknownContext(AnalysisRefusal):
    """No registered context with that hash for the calling site, or unknown head (NOT_FOUND)."""


class ModelMismatch(AnalysisRefusal):
    """The site pinned another model, or the context is for another head (FAILED_PRECONDITION)."""


class TooLarge(AnalysisRefusal):
    """Batch or request over the service's limits (RESOURCE_EXHAUSTED)."""
