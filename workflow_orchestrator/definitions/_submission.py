"""What a user submits as a workflow definition, parsed and checked before it is stored.

A submission is the definition's text (YAML or JSON, the DSL document itself) or a JSON wrapper
``{"id": "...", "definition": <document or its YAML text>}``. The definition id comes from the
wrapper, else from the caller (``?id=`` on the API, the file name is *not* used), else from the
document's ``document.name``. Ids may contain letters, digits, ``_``, ``-`` and ``.``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from workflow_orchestrator.dsl.validation import (
    Deadline,
    DefinitionProblem,
    InvalidDefinition,
    ValidationOptions,
    load_document,
    validate_definition,
)
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.storage import Database, Unstorable, check_storable
from workflow_orchestrator.storage.definitions import RegistrationResult, register_definition

__all__ = [
    "DEFINITION_ID_PATTERN",
    "InvalidSubmission",
    "Submission",
    "parse_submission",
    "register_submission",
    "schedule_problems",
    "storable_problems",
]

DEFINITION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class InvalidSubmission(OrchestratorError, ValueError):
    """The submitted body is not a definition we can read (before any DSL rule applies)."""


@attrs.frozen(kw_only=True)
class Submission:
    """A validated definition ready to be stored."""

    definition_id: str
    namespace: str
    name: str
    version: str
    document: dict[str, Any] = attrs.field(repr=False)
    source_text: str = attrs.field(repr=False)


def _unwrap(
    document: dict[str, Any], text: str, options: ValidationOptions, deadline: Deadline | None
) -> tuple[str | None, dict[str, Any], str]:
    """``{"id", "definition"}`` wrappers give their id and inner document."""
    if "document" in document or "definition" not in document:
        return None, document, text
    unknown = sorted(set(document) - {"id", "definition"})
    if unknown:
        raise InvalidSubmission(
            f"a wrapped definition has only 'id' and 'definition'; remove {unknown}"
        )
    wrapped_id = document.get("id")
    if wrapped_id is not None and not isinstance(wrapped_id, str):
        raise InvalidSubmission(f"'id' must be a string, got {json.dumps(wrapped_id)}")
    inner = document["definition"]
    if isinstance(inner, str):
        inner_document = load_document(
            inner, max_expanded_size=options.max_expanded_size, deadline=deadline
        )
        return wrapped_id, inner_document, inner
    if isinstance(inner, dict):
        return wrapped_id, inner, json.dumps(inner, indent=2)
    raise InvalidSubmission(
        "'definition' must be the workflow document (an object) or its YAML/JSON text"
    )


def schedule_problems(document: dict[str, Any]) -> list[DefinitionProblem]:
    """What the scheduler could not run in a valid document's ``schedule`` (a cron expression
    it cannot read, several of every/cron/after, a duration given as an expression)."""
    if not isinstance(document.get("schedule"), dict):
        return []
    from workflow_orchestrator.dsl import build_workflow
    from workflow_orchestrator.scheduler import ScheduleError, validate_schedule

    schedule = build_workflow(document).schedule
    if schedule is None:
        return []
    try:
        validate_schedule(schedule)
    except ScheduleError as exc:
        pointer = "/schedule/cron" if "cron" in str(exc).lower() else "/schedule"
        return [DefinitionProblem(pointer=pointer, message=str(exc), rule="schedule")]
    return []


def storable_problems(document: dict[str, Any], source_text: str = "") -> list[DefinitionProblem]:
    """What PostgreSQL could not store in a loaded definition (a NUL character, a lone
    surrogate), as one problem (rule ``storable``) at its pointer; none when it can be stored."""
    try:
        check_storable(document, what="this value")
        check_storable(source_text, what="the text of the definition")
    except Unstorable as unstorable:
        message = str(unstorable).removesuffix(f" at {unstorable.pointer}")
        return [DefinitionProblem(pointer=unstorable.pointer, message=message, rule="storable")]
    return []


def parse_submission(
    body: str | bytes,
    *,
    definition_id: str | None = None,
    options: ValidationOptions | None = None,
) -> Submission:
    """Read, unwrap and validate a submitted definition.

    Raises ``InvalidSubmission`` for a body that is not a definition at all, and
    ``InvalidDefinition`` (with every problem and its JSON pointer) for one that breaks the DSL
    or one of ``options``' limits (expanded size, expressions, the validation deadline).
    """
    options = options or ValidationOptions()
    deadline = options.deadline()
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if not text.strip():
        raise InvalidSubmission("the body is empty; send the workflow definition as YAML or JSON")
    loaded = load_document(text, max_expanded_size=options.max_expanded_size, deadline=deadline)
    wrapped_id, document, source_text = _unwrap(loaded, text, options, deadline)
    problems = storable_problems(document, source_text)
    if problems:
        raise InvalidDefinition(problems)
    problems = validate_definition(document, options, deadline=deadline)
    if not problems:
        problems = schedule_problems(document)
    if problems:
        raise InvalidDefinition(problems)
    header = document["document"]
    chosen = wrapped_id or definition_id or str(header["name"])
    if not DEFINITION_ID_PATTERN.match(chosen):
        raise InvalidDefinition(
            [
                DefinitionProblem(
                    pointer="/document/name" if not (wrapped_id or definition_id) else "",
                    message=f"definition id {chosen!r} may contain only letters, digits, '_', "
                    "'-' and '.' (at most 200); choose another id",
                    rule="definition-id",
                )
            ]
        )
    return Submission(
        definition_id=chosen,
        namespace=str(header["namespace"]),
        name=str(header["name"]),
        version=str(header["version"]),
        document=document,
        source_text=source_text,
    )


async def register_submission(database: Database, submission: Submission) -> RegistrationResult:
    """Store a validated submission; raises ``DefinitionConflict`` as ``register_definition``."""
    return await register_definition(
        database,
        definition_id=submission.definition_id,
        version=submission.version,
        namespace=submission.namespace,
        name=submission.name,
        document=submission.document,
        source_text=submission.source_text,
    )
