"""The public surface of ``workflow_orchestrator.dsl`` and its I/O boundary."""

from __future__ import annotations

import subprocess
import sys

import workflow_orchestrator.dsl as dsl
import workflow_orchestrator.dsl.model as model
import workflow_orchestrator.dsl.runtime as runtime


def test_public_names() -> None:
    """The package re-exports the names users build on (a change here is an API change)."""
    assert {
        "Interpreter",
        "InMemoryEffects",
        "Effects",
        "ExecutionState",
        "WorkflowResult",
        "WorkflowError",
        "Problem",
        "ErrorType",
        "load_workflow",
        "build_workflow",
        "ExpressionEngine",
        "validate_definition",
        "InvalidDefinition",
    } <= set(dsl.__all__)
    for package in (dsl, model, runtime):
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name}"


def test_dsl_does_not_import_httpx() -> None:
    """The interpreter core never imports the httpx adapter (the only I/O module)."""
    code = "import sys, workflow_orchestrator.dsl; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
