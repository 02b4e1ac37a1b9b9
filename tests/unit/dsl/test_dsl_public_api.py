"""The public surface of ``workflow_orchestrator.dsl`` and its I/O boundary at import time."""

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


def test_importing_dsl_loads_no_adapter() -> None:
    """Importing the DSL loads no I/O client and no package of ours but dsl and errors."""
    code = (
        "import sys, workflow_orchestrator.dsl\n"
        "for name in sorted(sys.modules):\n"
        "    root = name.split('.')[0]\n"
        "    ours = name.split('.')[1] if root == 'workflow_orchestrator' and '.' in name else ''\n"
        "    if root in {'httpx', 'anyio', 'asyncio', 'asyncpg', 'aio_pika', 'trio_asyncio'}"
        " or ours not in {'', 'dsl', 'errors', '_version'}:\n"
        "        print(name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
