"""From definition text or document to the shared model: load, validate, build."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.model._build import ModelError, build_workflow
from workflow_orchestrator.dsl.model._tasks import Workflow
from workflow_orchestrator.dsl.validation import (
    DefinitionProblem,
    InvalidDefinition,
    ValidationOptions,
    load_document,
    validate_definition,
)


def load_workflow(
    definition: str | bytes | Mapping[str, Any],
    options: ValidationOptions | None = None,
) -> Workflow:
    """The model of a definition (YAML/JSON text or a loaded document), validated first.

    Raises `InvalidDefinition` listing every problem (schema and semantic) with its pointer.
    """
    document = load_document(definition) if isinstance(definition, str | bytes) else definition
    problems = validate_definition(document, options or ValidationOptions())
    if problems:
        raise InvalidDefinition(problems)
    try:
        return build_workflow(document)
    except ModelError as exc:
        raise InvalidDefinition(
            [DefinitionProblem(pointer=exc.pointer, message=exc.message, rule="model")]
        ) from None
