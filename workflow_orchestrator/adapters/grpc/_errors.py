"""The DSL errors of ``call: grpc``: gRPC status codes as the DSL's standard problems.

A failed call becomes a `WorkflowError` whose type and status follow the usual mapping of gRPC
codes to HTTP statuses (UNAVAILABLE 503, DEADLINE_EXCEEDED 504, UNAUTHENTICATED 401, ...),
so ``try``/``catch`` in a workflow catches and retries it by type or status like an HTTP
failure. The title names the gRPC code (``gRPC UNAVAILABLE``); the detail names the service,
the method, the target and the server's message, cut short and without NUL (it is stored with
the instance).
"""

from __future__ import annotations

import grpc

from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError

__all__ = ["MAX_MESSAGE_SETTING", "SETTINGS", "configuration_error", "status_error"]

SETTINGS = "workflows.calls.grpc"
MAX_MESSAGE_SETTING = f"{SETTINGS}.maxMessageSize"
_DETAIL_CHARS = 300

# gRPC code -> (DSL error type, status): the HTTP statuses of Google's API mapping.
_MAPPING: dict[grpc.StatusCode, tuple[str, int]] = {
    grpc.StatusCode.CANCELLED: (ErrorType.COMMUNICATION, 499),
    grpc.StatusCode.UNKNOWN: (ErrorType.COMMUNICATION, 500),
    grpc.StatusCode.INVALID_ARGUMENT: (ErrorType.VALIDATION, 400),
    grpc.StatusCode.DEADLINE_EXCEEDED: (ErrorType.TIMEOUT, 504),
    grpc.StatusCode.NOT_FOUND: (ErrorType.COMMUNICATION, 404),
    grpc.StatusCode.ALREADY_EXISTS: (ErrorType.COMMUNICATION, 409),
    grpc.StatusCode.PERMISSION_DENIED: (ErrorType.AUTHORIZATION, 403),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (ErrorType.COMMUNICATION, 429),
    grpc.StatusCode.FAILED_PRECONDITION: (ErrorType.COMMUNICATION, 400),
    grpc.StatusCode.ABORTED: (ErrorType.COMMUNICATION, 409),
    grpc.StatusCode.OUT_OF_RANGE: (ErrorType.COMMUNICATION, 400),
    grpc.StatusCode.UNIMPLEMENTED: (ErrorType.COMMUNICATION, 501),
    grpc.StatusCode.INTERNAL: (ErrorType.COMMUNICATION, 500),
    grpc.StatusCode.UNAVAILABLE: (ErrorType.COMMUNICATION, 503),
    grpc.StatusCode.DATA_LOSS: (ErrorType.COMMUNICATION, 500),
    grpc.StatusCode.UNAUTHENTICATED: (ErrorType.AUTHENTICATION, 401),
}


def _shown(text: str) -> str:
    text = text.replace("\0", "\ufffd")
    return text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "..."


def status_error(
    code: grpc.StatusCode, details: str, *, what: str, timeout: float, where: str
) -> WorkflowError:
    """The DSL error of a call ``what`` (``service/method at host:port``) that ended with
    ``code``; a response larger than the limit names the setting that raises it."""
    error_type, status = _MAPPING.get(code, (ErrorType.COMMUNICATION, 500))
    message = _shown(details or "no message")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        message = (
            f"no answer within {timeout:g}s ({message}); raise {SETTINGS}.timeout or the "
            "task's timeout if the service needs longer"
        )
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        message = f"{message}; raise {MAX_MESSAGE_SETTING} or ask for less"
        status = 502
    return WorkflowError(
        Problem.standard(
            error_type,
            status=status,
            title=f"gRPC {code.name}",
            detail=f"gRPC call {what} failed with {code.name}: {message}",
            instance=where,
        )
    )


def configuration_error(detail: str, where: str) -> WorkflowError:
    """A configuration error of the call (its definition or the service's settings)."""
    return WorkflowError(Problem.standard(ErrorType.CONFIGURATION, detail=detail, instance=where))
