"""The root of every error workflow-orchestrator raises on purpose.

Subclasses also inherit the builtin they refine (``DefinitionNotFound(OrchestratorError,
LookupError)``) and carry ids as attributes, so callers can catch either.
"""


class OrchestratorError(Exception):
    """Base class of all errors raised by workflow-orchestrator itself."""
