"""The refusals of the security layer."""

from __future__ import annotations

from workflow_orchestrator.errors import OrchestratorError

__all__ = ["Forbidden", "Unauthenticated"]


class Unauthenticated(OrchestratorError):
    """No credential, or one that is not valid (a 401): the message says which."""


class Forbidden(OrchestratorError):
    """A valid principal without the role or namespace (a 403)."""
