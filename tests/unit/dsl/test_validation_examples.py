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

UNSUPPORTED = (
    "this service does not run call: {kind} (not supported yet, no setting enables it); use "
    "call: http or call: openapi, or a function declared in use.functions (unsupported-call)"
)
CONTAINER = (
    "this service does not run run.container: it has no container runtime (not supported yet, "
    "no setting enables it); remove this task (container-runtime)"
)
SHELL = (
    "this service does not run run.shell while workflows.run.shell is false (the default); set "
    "workflows.run.shell: true in the configuration, or remove this task (shell-disabled)"
)
SCRIPT = (
    "this service does not run run.script while workflows.run.script is false (the default); "
    "set workflows.run.script: true in the configuration, or remove this task (script-disabled)"
)
EXPECTED = {
    "call-asyncapi-publish.yaml": [f"/do/0/findPet/call: {UNSUPPORTED.format(kind='asyncapi')}"],
    "call-asyncapi-subscribe-consume-amount.yaml": [
        f"/do/0/getNotifications/call: {UNSUPPORTED.format(kind='asyncapi')}"
    ],
    "call-asyncapi-subscribe-consume-forever-foreach.yaml": [
        f"/do/0/getNotifications/call: {UNSUPPORTED.format(kind='asyncapi')}"
    ],
    "call-asyncapi-subscribe-consume-until.yaml": [
        f"/do/0/getNotifications/call: {UNSUPPORTED.format(kind='asyncapi')}"
    ],
    "call-asyncapi-subscribe-consume-while.yaml": [
        f"/do/0/getNotifications/call: {UNSUPPORTED.format(kind='asyncapi')}"
    ],
    "call-grpc.yaml": [f"/do/0/greet/call: {UNSUPPORTED.format(kind='grpc')}"],
    "call-mcp.yaml": [f"/do/0/publishMessageToSlack/call: {UNSUPPORTED.format(kind='mcp')}"],
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
    """With shell, script and containers enabled only unsupported calls remain."""
    options = ValidationOptions(container_runtime=True, allow_shell=True, allow_script=True)
    problems = [problem.rule for problem in validate_definition(_load(example), options)]
    assert set(problems) <= {"unsupported-call"}


def _load(path: Path) -> Any:
    return load_document(path.read_bytes(), filename=str(path))
