"""Helpers for the interpreter's unit tests: run a definition in memory."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    InMemoryEffects,
    Interpreter,
    RuntimeOptions,
    WorkflowResult,
)
from workflow_orchestrator.dsl.validation import load_document

HEADER = "document: {dsl: '1.0.3', namespace: test, name: unit, version: '1.0.0'}\n"


def document(body: str) -> dict[str, Any]:
    """A definition document from the YAML ``body`` (the ``document:`` header is added)."""
    return load_document(HEADER + textwrap.dedent(body))


async def run(
    body: str | Mapping[str, Any],
    input: Any = None,
    *,
    effects: InMemoryEffects | None = None,
    options: RuntimeOptions | None = None,
) -> tuple[WorkflowResult, InMemoryEffects]:
    """Validate, build and run a workflow to its end with in-memory effects."""
    definition = document(body) if isinstance(body, str) else body
    effects = effects or InMemoryEffects()
    async with open_expression_engine() as engine:
        interpreter = Interpreter(load_workflow(definition), engine, options)
        return await interpreter.start(effects, input), effects


def lifecycle_types(effects: InMemoryEffects) -> list[str]:
    """The short kinds (``task.started``) and task pointers of the lifecycle events, in order."""
    return [
        f"{r.data['type'].removeprefix('io.serverlessworkflow.').removesuffix('.v1')} "
        f"{r.data['data'].get('task', '')}".strip()
        for r in effects.log
        if r.kind == "lifecycle"
    ]
