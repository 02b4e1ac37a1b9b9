"""The expression error and the evaluation limits.

An ``ExpressionError`` is the spec's expression error: every problem with a runtime expression
(syntax, a forbidden builtin, a jq runtime error, a blown budget) surfaces as one, so the
interpreter can turn it into the error object ``{type: EXPRESSION_ERROR_TYPE, status: 400}``.
``jq_detail`` turns jq's message into the ``detail`` of one, wherever jq ran (in this process or
in a sandbox worker).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from workflow_orchestrator.errors import OrchestratorError

EXPRESSION_ERROR_TYPE = "https://serverlessworkflow.io/spec/1.0.0/errors/expression"
EXPRESSION_ERROR_STATUS = 400


@attrs.frozen(kw_only=True)
class ExpressionLimits:
    """Budget of one evaluation that is not proven cheap.

    ``cpu_seconds`` is CPU time of the sandbox worker; ``max_output_bytes`` bounds the JSON text
    of the result; ``max_memory_bytes`` bounds the address space the worker may add while it
    evaluates (0: no bound). ``max_workers`` worker processes serve evaluations concurrently,
    taking turns between the owners (definitions) that wait; each owner may have
    ``max_queued_per_owner`` evaluations admitted (waiting or running), further ones wait for
    room. ``max_inline_input_bytes`` bounds the input (data and arguments, measured as JSON
    text) of a proven-cheap program run in-process; a larger input goes to the sandbox.
    The defaults fit a service; tests use ``cpu_seconds=0.2``.
    """

    cpu_seconds: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    max_output_bytes: int = attrs.field(default=10_000_000, validator=attrs.validators.gt(0))
    max_memory_bytes: int = attrs.field(default=512 * 1024 * 1024, validator=attrs.validators.ge(0))
    max_workers: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    max_queued_per_owner: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    max_inline_input_bytes: int = attrs.field(default=64 * 1024, validator=attrs.validators.ge(0))


class ExpressionError(OrchestratorError, ValueError):
    """A runtime expression could not be compiled or evaluated.

    ``expression`` is the source text as written in the definition; ``detail`` says what went
    wrong. ``type`` and ``status`` are the spec's expression error.
    """

    type: str = EXPRESSION_ERROR_TYPE
    status: int = EXPRESSION_ERROR_STATUS

    def __init__(self, expression: str, detail: str) -> None:
        super().__init__(f"expression {expression!r}: {detail}")
        self.expression = expression
        self.detail = detail

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (type(self), (self.expression, self.detail))


def jq_detail(error: BaseException | str) -> str:
    """jq's error message without the ``jq: error`` prefix and its trailing lines."""
    text = str(error).strip().removeprefix("jq: error: ")
    text = re.sub(r"\njq: \d+ compile errors?$", "", text)
    first = text.split("\n", 1)[0]
    return re.sub(r" at <top-level>, (line \d+, column \d+):?$", r" at \1", first)
