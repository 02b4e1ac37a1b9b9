"""Runtime expressions: jq in strict (``${ ... }``) and loose mode, compiled once, sandboxed.

Arguments are passed without ``$``: the standard ``$context``, ``$input``, ``$output``,
``$secrets``, ``$task``, ``$workflow``, ``$runtime`` and ``$authorization`` (``ARGUMENT_NAMES``)
and the variables tasks add (``$item``/``$index`` of ``for``, ``$error`` of ``catch``, ...).
Any variable an expression reads and the caller does not pass is ``null``.

Programs that are not proven cheap run in an ``ExpressionSandbox`` handed to the engine; the
worker-process sandbox lives in ``workflow_orchestrator.adapters`` (this package starts no
process).
"""

from ._compiled import ARGUMENT_NAMES, CompiledExpression, is_runtime_expression
from ._engine import ExpressionEngine
from ._errors import (
    EXPRESSION_ERROR_STATUS,
    EXPRESSION_ERROR_TYPE,
    ExpressionError,
    ExpressionLimits,
    jq_detail,
)
from ._sandbox import ExpressionSandbox
from ._size import json_size_exceeds

__all__ = [
    "ARGUMENT_NAMES",
    "EXPRESSION_ERROR_STATUS",
    "EXPRESSION_ERROR_TYPE",
    "CompiledExpression",
    "ExpressionEngine",
    "ExpressionError",
    "ExpressionLimits",
    "ExpressionSandbox",
    "is_runtime_expression",
    "jq_detail",
    "json_size_exceeds",
]
