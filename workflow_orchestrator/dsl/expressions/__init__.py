"""Runtime expressions: jq in strict (``${ ... }``) and loose mode, compiled once, sandboxed.

Arguments are passed without ``$``: the standard ``$context``, ``$input``, ``$output``,
``$secrets``, ``$task``, ``$workflow``, ``$runtime`` and ``$authorization`` (``ARGUMENT_NAMES``)
and the variables tasks add (``$item``/``$index`` of ``for``, ``$error`` of ``catch``, ...).
Any variable an expression reads and the caller does not pass is ``null``.
"""

from ._compiled import ARGUMENT_NAMES, CompiledExpression, is_runtime_expression
from ._engine import ExpressionEngine, open_expression_engine
from ._errors import (
    EXPRESSION_ERROR_STATUS,
    EXPRESSION_ERROR_TYPE,
    ExpressionError,
    ExpressionLimits,
)

__all__ = [
    "ARGUMENT_NAMES",
    "EXPRESSION_ERROR_STATUS",
    "EXPRESSION_ERROR_TYPE",
    "CompiledExpression",
    "ExpressionEngine",
    "ExpressionError",
    "ExpressionLimits",
    "is_runtime_expression",
    "open_expression_engine",
]
