"""The spec's error model: problems, standard types and the workflow error."""

from __future__ import annotations

from workflow_orchestrator.dsl.errors import (
    ErrorType,
    Problem,
    WorkflowError,
    canonical_error_type,
)
from workflow_orchestrator.errors import OrchestratorError


def test_standard_problem_has_the_default_status() -> None:
    """Standard error types get the status the DSL reference gives them."""
    assert Problem.standard(ErrorType.TIMEOUT).status == 408
    assert Problem.standard(ErrorType.AUTHORIZATION).status == 403
    assert Problem.standard(ErrorType.VALIDATION).status == 400
    assert Problem.standard(ErrorType.COMMUNICATION, status=503).status == 503


def test_problem_json_round_trip_leaves_out_absent_members() -> None:
    """to_json omits None members and from_json restores the same problem."""
    problem = Problem(type="https://x/y", status=418, instance="/do/0/t", title="Teapot")
    assert problem.to_json() == {
        "type": "https://x/y",
        "status": 418,
        "instance": "/do/0/t",
        "title": "Teapot",
    }
    assert Problem.from_json(problem.to_json()) == problem


def test_with_instance_keeps_an_existing_instance() -> None:
    """A raised error keeps the innermost task's pointer as its instance."""
    inner = Problem(type="t", status=500, instance="/do/0/a/do/0/b")
    assert inner.with_instance("/do/0/a") is inner
    assert Problem(type="t", status=500).with_instance("/do/1/c").instance == "/do/1/c"


def test_ctk_alias_prefix_maps_to_the_standard_type() -> None:
    """The CTK's 'dsl/errors/types/' spelling names the same standard type."""
    alias = "https://serverlessworkflow.io/dsl/errors/types/communication"
    assert canonical_error_type(alias) == ErrorType.COMMUNICATION
    assert canonical_error_type("https://example.com/custom") == "https://example.com/custom"


def test_workflow_error_message_names_detail_instance_and_type() -> None:
    """The exception text says what failed, where, and the error type and status."""
    error = WorkflowError(
        Problem.standard(ErrorType.TIMEOUT, detail="timed out after 5s", instance="/do/0/slow")
    )
    assert isinstance(error, OrchestratorError)
    assert isinstance(error, RuntimeError)
    assert str(error) == (
        "timed out after 5s at /do/0/slow "
        "(https://serverlessworkflow.io/spec/1.0.0/errors/timeout, status 408)"
    )


def test_from_json_tolerates_unusable_statuses() -> None:
    """An error object with a non-numeric status becomes a 500 instead of crashing."""
    assert Problem.from_json({"type": "t", "status": "oops"}).status == 500
    assert Problem.from_json({"type": "t", "status": "404"}).status == 404
    assert Problem.from_json({"type": "t"}).status == 500
