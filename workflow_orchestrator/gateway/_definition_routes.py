"""``/v1/workflow-definitions``: register, read, list and delete workflow definitions.

``POST`` takes the definition's YAML or JSON as the body (any of ``application/yaml``,
``application/x-yaml``, ``text/yaml``, ``application/json``), or a JSON wrapper
``{"id": ..., "definition": ...}``; ``?id=`` names the id otherwise (default: the document's
name). 201 registers a new version, 200 means the identical document was registered already,
409 is the same id and version with other content, 422 lists every DSL problem with its JSON
pointer, or the one limit the definition is over (rule ``limit`` or ``size``: expanded size,
expressions, validation time), naming the setting that raises it. Validation runs in a worker
thread (``parse_submission_off_loop``), so the event loop keeps answering meanwhile.

Reads (list, one, versions) go through the API's read pool (``reads``, with its statement
timeout) and may be served by a read replica (``database.readPreference``); registration and
deletion use the primary's main pool.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, g, request

from workflow_orchestrator.definitions import (
    InvalidSubmission,
    parse_submission_off_loop,
    register_submission,
    validation_limiter,
)
from workflow_orchestrator.dsl.validation import InvalidDefinition, ValidationOptions
from workflow_orchestrator.gateway._access import forbid_outside, visible_namespaces
from workflow_orchestrator.gateway._json import invalid_body, json_response, unstorable_problem
from workflow_orchestrator.gateway._problems import problem_response
from workflow_orchestrator.storage import (
    MAX_JSON_DEPTH,
    Database,
    DefinitionConflict,
    DefinitionNotFound,
    Unstorable,
)
from workflow_orchestrator.storage.definitions import (
    DefinitionSummary,
    InvalidCursor,
    StoredDefinition,
    delete_definition,
    get_definition,
    list_definitions,
    list_versions,
)

__all__ = ["MAX_PAGE_SIZE", "definition_routes", "page_size"]

MAX_PAGE_SIZE = 500


def page_size(raw: str | None, default: int = 50, maximum: int = MAX_PAGE_SIZE) -> int | Response:
    """The ``limit`` query parameter, or a 400 problem saying what is allowed."""
    if raw is None:
        return default
    # ASCII digits only ("²".isdigit() is true), and few enough that int() accepts them.
    if raw.isascii() and raw.isdigit() and len(raw) <= 9 and 1 <= int(raw) <= maximum:
        return int(raw)
    return problem_response(
        400,
        "invalid-query-parameter",
        "Invalid Query Parameter",
        f"limit must be a whole number from 1 to {maximum}, got {raw[:100]!r}",
        parameter="limit",
    )


def _summary_json(item: DefinitionSummary | StoredDefinition) -> dict[str, Any]:
    return {
        "id": item.definition_id,
        "namespace": item.namespace,
        "name": item.name,
        "version": item.version,
        "createdAt": item.created_at.isoformat(),
    }


def _definition_json(item: StoredDefinition) -> dict[str, Any]:
    return {**_summary_json(item), "definition": item.document}


def _not_found(exc: DefinitionNotFound) -> Response:
    if visible_namespaces() is not None:  # its message lists ids of every namespace
        return _hidden(exc.definition_id)
    return problem_response(404, "definition-not-found", "Definition Not Found", str(exc))


def _hidden(definition_id: str) -> Response:
    """The 404 of a definition outside the caller's namespaces (as if it did not exist)."""
    return problem_response(
        404,
        "definition-not-found",
        "Definition Not Found",
        f"no workflow definition {definition_id!r} in your namespaces; check the id",
    )


async def _namespace_holding(database: Database, definition_id: str) -> str | None:
    """The namespace of the live versions of ``definition_id`` (the latest's), or None."""
    try:
        versions = await list_versions(database, definition_id)
    except DefinitionNotFound:
        return None
    return versions[-1].namespace if versions else None


def _visible(namespace: str) -> bool:
    namespaces = visible_namespaces()
    return namespaces is None or namespace in namespaces


def definition_routes(database: Database, reads: Database, options: ValidationOptions) -> Blueprint:
    """The definitions routes, relative to the API's ``/v1`` prefix: ``database`` registers
    and deletes, ``reads`` (``Database.api_reads()``) serves the reads."""
    routes = Blueprint("definitions", __name__, url_prefix="/workflow-definitions")
    validation_threads = validation_limiter()

    @routes.post("")
    async def register() -> Response:
        body = await request.get_data(as_text=False)
        try:
            submission = await parse_submission_off_loop(
                body,
                definition_id=request.args.get("id") or None,
                options=options,
                limiter=validation_threads,
            )
            g.audit_namespace, g.audit_target = submission.namespace, submission.definition_id
            forbid_outside(submission.namespace, "definitions")
            taken = await _namespace_holding(database, submission.definition_id)
            if taken is not None and taken != submission.namespace:
                # An id belongs to one namespace: a new version elsewhere would take it over.
                forbid_outside(taken, "definitions")
                return problem_response(
                    409,
                    "definition-conflict",
                    "Definition Conflict",
                    f"the id {submission.definition_id!r} belongs to namespace {taken!r}; "
                    "register this definition under another id (?id=) or in that namespace",
                )
            result = await register_submission(database, submission)
        except RecursionError:
            raise invalid_body(
                f"the workflow definition nests deeper than {MAX_JSON_DEPTH} levels; flatten it",
                reason="depth",
            ) from None
        except Unstorable as exc:
            raise unstorable_problem(exc) from None
        except InvalidSubmission as exc:
            return problem_response(400, "invalid-body", "Invalid Request Body", str(exc))
        except InvalidDefinition as exc:
            return problem_response(
                422,
                "invalid-definition",
                "Invalid Workflow Definition",
                f"the workflow definition has {len(exc.problems)} problem(s); fix each one "
                "listed in 'problems'",
                problems=[
                    {"pointer": p.pointer, "message": p.message, "rule": p.rule}
                    for p in exc.problems
                ],
            )
        except DefinitionConflict as exc:
            return problem_response(409, "definition-conflict", "Definition Conflict", str(exc))
        stored = result.definition
        location = f"{request.path.rstrip('/')}/{stored.definition_id}/versions/{stored.version}"
        return json_response(
            _definition_json(stored),
            201 if result.created else 200,
            headers={"Location": location},
        )

    @routes.get("")
    async def listing() -> Response:
        limit = page_size(request.args.get("limit"))
        if isinstance(limit, Response):
            return limit
        try:
            page = await list_definitions(
                reads,
                limit=limit,
                cursor=request.args.get("cursor") or None,
                namespace=request.args.get("namespace") or None,
                name=request.args.get("name") or None,
                text=request.args.get("text") or None,
                namespaces=visible_namespaces(),
            )
        except InvalidCursor as exc:
            return problem_response(
                400, "invalid-cursor", "Invalid Cursor", str(exc), parameter="cursor"
            )
        return json_response(
            {"items": [_summary_json(i) for i in page.items], "nextCursor": page.next_cursor}
        )

    @routes.get("/<definition_id>")
    async def latest(definition_id: str) -> Response:
        try:
            stored = await get_definition(reads, definition_id, read_only=True)
        except DefinitionNotFound as exc:
            return _not_found(exc)
        if not _visible(stored.namespace):
            return _hidden(definition_id)
        return json_response(_definition_json(stored))

    @routes.get("/<definition_id>/versions")
    async def versions(definition_id: str) -> Response:
        try:
            found = await list_versions(reads, definition_id)
        except DefinitionNotFound as exc:
            return _not_found(exc)
        shown = [v for v in found if _visible(v.namespace)]
        if not shown:
            return _hidden(definition_id)
        return json_response({"items": [_summary_json(v) for v in shown]})

    @routes.get("/<definition_id>/versions/<version>")
    async def one_version(definition_id: str, version: str) -> Response:
        try:
            stored = await get_definition(reads, definition_id, version, read_only=True)
        except DefinitionNotFound as exc:
            return _not_found(exc)
        if not _visible(stored.namespace):
            return _hidden(definition_id)
        return json_response(_definition_json(stored))

    @routes.delete("/<definition_id>")
    async def delete(definition_id: str) -> Response:
        if visible_namespaces() is not None:
            try:
                live = await list_versions(database, definition_id)
            except DefinitionNotFound as exc:
                return _not_found(exc)
            for namespace in sorted({v.namespace for v in live}):
                g.audit_namespace = namespace
                forbid_outside(namespace, "definitions")
        try:
            deleted = await delete_definition(database, definition_id)
        except DefinitionNotFound as exc:
            return _not_found(exc)
        return json_response({"id": definition_id, "deletedVersions": list(deleted)})

    return routes
