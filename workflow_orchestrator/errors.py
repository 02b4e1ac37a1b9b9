"""The root of every error workflow-orchestrator raises on purpose, and how to read a group of them.

Subclasses also inherit the builtin they refine (``DefinitionNotFound(OrchestratorError,
LookupError)``) and carry ids as attributes, so callers can catch either. ``exception_leaves``
is the one way the packages flatten an ``ExceptionGroup`` (a nursery's errors) into the errors
it holds; every package may import this module, and it imports nothing of ours.
"""

from __future__ import annotations

__all__ = ["OrchestratorError", "exception_leaves"]


class OrchestratorError(Exception):
    """Base class of all errors raised by workflow-orchestrator itself."""


def exception_leaves(error: BaseException) -> list[BaseException]:
    """The errors inside ``error``, depth first in the group's order: nested groups are
    flattened, any other error is a leaf (``[error]`` when it is not a group). Causes and
    contexts are not followed."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in exception_leaves(inner)]
    return [error]
