"""The errors an outbound HTTP call ends in, as the DSL's `WorkflowError`s (both clients).

A timeout is the spec's timeout error; a refusal by the outbound policy a communication error
with status 403 naming the host, the address, why and the setting to change; a body over the
limit a communication error with status 502 naming the limit and its setting; any other
failure (connecting, TLS, a broken connection, a malformed response) a communication error
with status 503.
"""

from __future__ import annotations

from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.security import OutboundRefused

DEFAULT_MAX_RESPONSE_SIZE = 10 * 1024 * 1024
MAX_RESPONSE_SIZE_SETTING = "workflows.maxResponseSize"


class TooLarge(OrchestratorError):
    """A response body over the limit: ``size`` is the declared length, or the limit when the
    body was cut off as it arrived (``declared`` False)."""

    def __init__(self, size: int, *, declared: bool) -> None:
        super().__init__(size)
        self.size = size
        self.declared = declared


def timed_out(method: str, url: str, timeout: float) -> WorkflowError:
    return WorkflowError(
        Problem.standard(
            ErrorType.TIMEOUT, detail=f"{method} {url} got no response within {timeout:g}s"
        )
    )


def refused(method: str, url: str, error: OutboundRefused) -> WorkflowError:
    return WorkflowError(
        Problem.standard(
            ErrorType.COMMUNICATION,
            status=403,
            title="Outbound Call Refused",
            detail=f"{method} {url}: {error.refusal.describe()}",
        )
    )


def too_large(method: str, url: str, error: TooLarge, limit: int) -> WorkflowError:
    size = f"{error.size} bytes, more than" if error.declared else "more than"
    return WorkflowError(
        Problem.standard(
            ErrorType.COMMUNICATION,
            status=502,
            title="Response Too Large",
            detail=f"{method} {url} answered with a body of {size} the limit of {limit} bytes; "
            f"raise the setting {MAX_RESPONSE_SIZE_SETTING} or ask for less",
        )
    )


def failed(method: str, url: str, reason: object) -> WorkflowError:
    return WorkflowError(
        Problem.standard(
            ErrorType.COMMUNICATION, status=503, detail=f"{method} {url} failed: {reason}"
        )
    )
