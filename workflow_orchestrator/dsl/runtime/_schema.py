"""Validation of data against the JSON schemas of ``input``, ``output`` and ``export``.

Validators are compiled once per schema content and kept in a bounded LRU cache keyed by the
document's content hash (the latest ``_MAX_VALIDATORS`` schemas), so schemas fetched for every
run (external resources, through the effects: see `Evaluator.schema_document`) share one entry
and never accumulate.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from workflow_orchestrator.dsl._lru import LruCache, content_hash
from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError

_MAX_VALIDATORS = 512
_VALIDATORS: LruCache[str, Any] = LruCache(_MAX_VALIDATORS)


def _validator(document: Any) -> Any:
    key = content_hash(document)
    found = _VALIDATORS.get(key)
    if found is None:
        found = _VALIDATORS.put(key, jsonschema_rs.validator_for(document))
    return found


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
