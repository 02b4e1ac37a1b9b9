"""The Serverless Workflow error model (RFC 7807 problems) and its standard error types."""

from workflow_orchestrator.dsl.errors._problem import (
    ErrorType,
    Problem,
    WorkflowError,
    canonical_error_type,
)

__all__ = ["ErrorType", "Problem", "WorkflowError", "canonical_error_type"]
