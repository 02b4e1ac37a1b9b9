"""Every official DSL 1.0.3 example validates, or yields exactly its intended problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.spec import SPEC, require_spec
from workflow_orchestrator.dsl.validation import (
    ValidationOptions,
    load_document,
    validate_definition,
)

EXAMPLES = sorted((SPEC / "examples").glob("*.yaml")) if SPEC.is_dir() else []

CONTAINER = (
    "this service does not run run.container while workflows.run.container.runtime is none (the "
    "default); set it to podman or docker in the configuration, or remove this task "
    "(container-runtime)"
)
SHELL = (
    "this service does not run run.shell while workflows.run.shell is false (the default); set "
    "workflows.run.shell: true in the configuration, or remove this task (shell-disabled)"
)
SCRIPT = (
    "this service does not run run.script while workflows.run.script is false (the default); "
    "set workflows.run.script: true in the configuration, or remove this task (script-disabled)"
)
MCP_STDIO = (
    "this service does not start MCP servers over stdio while workflows.calls.mcp.stdio is false "
    "(the default); set workflows.calls.mcp.stdio: true in the configuration, or use the http "
    "transport (mcp-stdio-disabled)"
)
EXPECTED = {
    "call-mcp.yaml": [f"/do/0/publishMessageToSlack/with/transport/stdio: {MCP_STDIO}"],
    "run-container-cleanup-always.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-container-cleanup-eventually.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-container-stdin-and-arguments.yaml": [f"/do/1/runContainer/run/container: {CONTAINER}"],
    "run-container-with-name.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-container-with-pull-policy.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-container.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-return-all.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-return-code.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-return-none.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-return-stderr.yaml": [f"/do/0/runContainer/run/container: {CONTAINER}"],
    "run-script-with-stdin-and-arguments.yaml": [f"/do/0/runScript/run/script: {SCRIPT}"],
    "run-shell-stdin-and-arguments.yaml": [f"/do/1/runShell/run/shell: {SHELL}"],
}


def _require_spec() -> None:
    require_spec()


def test_examples_are_found() -> None:
    """The official examples folder is present and holds the examples (fails in CI if not)."""
    _require_spec()
    assert len(EXAMPLES) >= 60
    assert set(EXPECTED) <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_official_example(example: Path) -> None:
    """An official example has no problems, except the intended not-supported/not-enabled one."""
    problems = [str(problem) for problem in validate_definition(_load(example))]
    assert problems == EXPECTED.get(example.name, [])


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_official_example_with_everything_enabled(example: Path) -> None:
    """With shell, script, containers and MCP stdio servers enabled every official example is
    accepted."""
    options = ValidationOptions(
        container_runtime=True, allow_shell=True, allow_script=True, allow_mcp_stdio=True
    )
    assert [str(p) for p in validate_definition(_load(example), options)] == []


@pytest.mark.parametrize("kind", ["grpc", "asyncapi", "mcp"])
def test_a_disabled_call_is_refused_naming_its_setting(kind: str) -> None:
    """A call kind the configuration disables is refused, naming the setting that enables it."""
    example = next(path for path in EXAMPLES if path.name.startswith(f"call-{kind}"))
    others = frozenset({"grpc", "asyncapi", "mcp", "a2a"} - {kind})
    problems = validate_definition(_load(example), ValidationOptions(enabled_calls=others))
    assert [p.rule for p in problems] == ["unsupported-call"]
    assert f"set workflows.calls.{kind}.enabled: true in the configuration" in str(problems[0])


def _load(path: Path) -> Any:
    return load_document(path.read_bytes(), filename=str(path))
