"""The public surface of ``workflow_orchestrator.adapters`` and the protocols it implements."""

from __future__ import annotations

import inspect

import workflow_orchestrator.adapters as adapters
from workflow_orchestrator.adapters import SandboxPool
from workflow_orchestrator.dsl.expressions import ExpressionSandbox


def test_public_names() -> None:
    """The package exports exactly its documented names (a change here is an API change)."""
    assert set(adapters.__all__) == {
        "HttpxClient",
        "PooledHttpClient",
        "LocalProcesses",
        "ProcessLimits",
        "SandboxPool",
        "ServiceContext",
        "hide_from_processes",
        "open_expression_engine",
        "open_local_processes",
        "open_sandbox",
        "open_service_adapters",
        "run_local_process",
    }
    for name in adapters.__all__:
        assert hasattr(adapters, name), name


def test_sandbox_pool_is_an_expression_sandbox() -> None:
    """SandboxPool.evaluate has the signature of the DSL's ExpressionSandbox protocol."""
    # mypy --strict checks the types where open_expression_engine hands a pool to the engine.
    protocol = inspect.signature(ExpressionSandbox.evaluate)
    assert inspect.signature(SandboxPool.evaluate).parameters.keys() == protocol.parameters.keys()
    assert inspect.iscoroutinefunction(SandboxPool.evaluate)
