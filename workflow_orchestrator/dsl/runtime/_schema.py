"""Validation of data against the JSON schemas of ``input``, ``output`` and ``export``.

Validators are compiled once per schema document (the model is shared, so the document object
identifies the schema) and kept for the life of the process. Schemas given as external
resources are fetched through the effects (see `Evaluator.schema_document`).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError

_VALIDATORS: dict[int, tuple[object, Any]] = {}


def _validator(document: Any) -> Any:
    entry = _VALIDATORS.get(id(document))
    if entry is None or entry[0] is not document:
        entry = (document, jsonschema_rs.validator_for(document))
        _VALIDATORS[id(document)] = entry
    return entry[1]


def validate_against(document: Any, value: Any, where: str, what: str) -> None:
    """Raise the spec's validation error if ``value`` does not match the schema ``document``."""
    errors = list(_validator(document).iter_errors(value))
    if errors:
        details = "; ".join(
            f"{'/' + '/'.join(map(str, e.instance_path)) if e.instance_path else '/'}: {e.message}"
            for e in errors[:5]
        )
        raise WorkflowError(
            Problem.standard(
                ErrorType.VALIDATION,
                title="Validation Error",
                detail=f"the {what} does not match its schema: {details}",
                instance=where,
            )
        )
