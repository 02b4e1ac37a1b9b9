"""The spec's error model: RFC 7807 problem details raised and caught by workflows.

A `Problem` is the immutable value a workflow sees (``$err`` in a ``catch``, the ``error`` of a
faulted instance); `WorkflowError` is the Python exception that carries one through the
interpreter. Standard error types are the URIs of the DSL reference's "standard error types".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.errors import OrchestratorError

_BASE = "https://serverlessworkflow.io/spec/1.0.0/errors/"
# The 1.0.3 CTK spells standard types under this older prefix; both spellings name one type.
_ALIAS_BASE = "https://serverlessworkflow.io/dsl/errors/types/"


class ErrorType:
    """The standard error type URIs and their default statuses."""

    CONFIGURATION = _BASE + "configuration"
    VALIDATION = _BASE + "validation"
    EXPRESSION = _BASE + "expression"
    AUTHENTICATION = _BASE + "authentication"
    AUTHORIZATION = _BASE + "authorization"
    TIMEOUT = _BASE + "timeout"
    COMMUNICATION = _BASE + "communication"
    RUNTIME = _BASE + "runtime"


_DEFAULT_STATUS = {
    ErrorType.CONFIGURATION: 400,
    ErrorType.VALIDATION: 400,
    ErrorType.EXPRESSION: 400,
    ErrorType.AUTHENTICATION: 401,
    ErrorType.AUTHORIZATION: 403,
    ErrorType.TIMEOUT: 408,
    ErrorType.COMMUNICATION: 500,
    ErrorType.RUNTIME: 500,
}


def canonical_error_type(error_type: str) -> str:
    """Return the standard spelling of ``error_type`` (maps the CTK's alias prefix)."""
    if error_type.startswith(_ALIAS_BASE):
        return _BASE + error_type[len(_ALIAS_BASE) :]
    return error_type


@attrs.frozen(kw_only=True)
class Problem:
    """An RFC 7807 problem as the DSL defines it; ``instance`` is a JSON pointer to the task."""

    type: str
    status: int
    instance: str | None = None
    title: str | None = None
    detail: str | None = None

    @classmethod
    def standard(
        cls,
        error_type: str,
        *,
        detail: str | None = None,
        title: str | None = None,
        instance: str | None = None,
        status: int | None = None,
    ) -> Problem:
        """Build a problem of a standard type with that type's default status."""
        return cls(
            type=error_type,
            status=status if status is not None else _DEFAULT_STATUS.get(error_type, 500),
            instance=instance,
            title=title,
            detail=detail,
        )

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Problem:
        """Rebuild a problem from `to_json` output (or a workflow's error object)."""
        return cls(
            type=str(value.get("type", ErrorType.RUNTIME)),
            status=_status(value.get("status")),
            instance=_opt_str(value.get("instance")),
            title=_opt_str(value.get("title")),
            detail=_opt_str(value.get("detail")),
        )

    def to_json(self) -> dict[str, Any]:
        """The problem as a JSON object, leaving out absent members."""
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        if self.instance is not None:
            out["instance"] = self.instance
        if self.title is not None:
            out["title"] = self.title
        if self.detail is not None:
            out["detail"] = self.detail
        return out

    def with_instance(self, instance: str) -> Problem:
        """This problem with ``instance`` set, unless it already names one."""
        if self.instance is not None:
            return self
        return attrs.evolve(self, instance=instance)


def _status(value: Any) -> int:
    """An HTTP-like status from a workflow value; anything unusable counts as 500."""
    if isinstance(value, bool):
        return 500
    try:
        return int(value)
    except (TypeError, ValueError):
        return 500


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class WorkflowError(OrchestratorError, RuntimeError):
    """A workflow-level error: what ``raise`` raises and ``try``/``catch`` catches.

    Uncaught, it faults the workflow instance with `problem` as its error.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        where = f" at {problem.instance}" if problem.instance else ""
        text = problem.detail or problem.title or problem.type
        super().__init__(f"{text}{where} ({problem.type}, status {problem.status})")
