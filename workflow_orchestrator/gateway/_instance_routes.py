"""``/v1/workflow-instances``: start, read, list, command and follow workflow instances.

``POST`` body: ``{"workflowDefinitionId", "version"?, "input"?, "businessKey"?,
"idempotencyKey"?}`` (the ``Idempotency-Key`` header works too): 201 a new instance, 200 the
instance an earlier request with the same key created. ``GET /{id}?wait=30s`` long-polls until
the instance is terminal (at most 60 s).

Reads (list, one, history) go through the API's read pool (``Database.api_reads()``, with its
statement timeout) and may be served by a read replica (``database.readPreference``), except a
``?wait=`` read and the answers to start and commands, which read their own writes on the
primary. A ``?wait=`` long poll wakes on the instance's terminal commit in this process, and
re-reads the instance's row only every ``server.longPollRecheckInterval`` otherwise.

Subflows: every instance shows its ``parentId`` (null for a top-level one); one instance
(``GET /{id}`` and the answers to commands) also lists its first ``MAX_CHILDREN_SHOWN``
``children`` (id, definition, status) that the caller may see (a child may run in another
namespace), and ``GET ?parentId=`` pages through all of them.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, g, request

from workflow_orchestrator.config._convert import parse_duration
from workflow_orchestrator.gateway._access import forbid_outside, visible_namespaces
from workflow_orchestrator.gateway._definition_routes import page_size
from workflow_orchestrator.gateway._json import (
    json_response,
    loads_strict,
    parse_json_body,
    unstorable_problem,
)
from workflow_orchestrator.gateway._problems import problem_response
from workflow_orchestrator.instances import (
    InputInvalid,
    InstanceRuntime,
    InterpreterSource,
    StartRequest,
)
from workflow_orchestrator.storage import (
    Database,
    DefinitionNotFound,
    InstanceNotFound,
    InvalidStatusTransition,
    Unstorable,
    check_depth,
    check_storable,
)
from workflow_orchestrator.storage.definitions import InvalidCursor, get_definition
from workflow_orchestrator.storage.instances import (
    INSTANCE_STATUSES,
    InstanceChild,
    InstanceRecord,
    get_instance,
    instance_history,
    list_instances,
    load_instance_family,
)

__all__ = [
    "DEFAULT_HISTORY_PAGE",
    "MAX_BUSINESS_KEY_LENGTH",
    "MAX_CHILDREN_SHOWN",
    "MAX_HISTORY_PAGE",
    "MAX_WAIT_SECONDS",
    "instance_routes",
]

MAX_WAIT_SECONDS = 60.0
MAX_BUSINESS_KEY_LENGTH = 1000
DEFAULT_HISTORY_PAGE = 100
MAX_HISTORY_PAGE = 1000
MAX_CHILDREN_SHOWN = 100
_FIELDS = {"workflowDefinitionId", "version", "input", "businessKey", "idempotencyKey"}
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class _BadRequest(ValueError):
    def __init__(
        self,
        detail: str,
        parameter: str | None = None,
        *,
        kind: str = "invalid-body",
        title: str = "Invalid Request Body",
    ) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.kind = "invalid-query-parameter" if parameter else kind
        self.title = "Invalid Query Parameter" if parameter else title


def _bad(exc: _BadRequest) -> Response:
    extra = {"parameter": exc.parameter} if exc.parameter else {}
    return problem_response(400, exc.kind, exc.title, str(exc), **extra)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _child_json(child: InstanceChild) -> dict[str, Any]:
    return {
        "id": str(child.instance_id),
        "workflowDefinitionId": child.definition_id,
        "version": child.definition_version,
        "status": child.status,
    }


async def _instance_json(
    catalog: InterpreterSource,
    record: InstanceRecord,
    snapshot: dict[str, Any] | None = None,
    children: tuple[InstanceChild, ...] | None = None,
) -> dict[str, Any]:
    workflow = (await catalog.interpreter(record.definition_id, record.definition_version)).workflow
    state = (snapshot or {}).get("state") or {}
    shown: dict[str, Any] = {}
    if children is not None:
        shown["children"] = [_child_json(c) for c in children]
    return {
        "id": str(record.instance_id),
        "workflowDefinitionId": record.definition_id,
        "version": record.definition_version,
        "namespace": workflow.namespace,
        "name": workflow.name,
        "status": record.status,
        "businessKey": record.business_key,
        "input": record.input,
        "output": record.output,
        "error": record.error,
        "context": record.context if record.context is not None else {},
        "activeTasks": sorted(set((state.get("active") or {}).values())),
        "createdAt": _iso(record.created_at),
        "updatedAt": _iso(record.updated_at),
        "startedAt": _iso(record.started_at),
        "completedAt": _iso(record.completed_at),
        "parentId": str(record.parent_id) if record.parent_id is not None else None,
        **shown,
    }


def _parse_start(body: Any, header_key: str | None) -> StartRequest:
    if not isinstance(body, dict):
        raise _BadRequest(
            'the body must be a JSON object such as {"workflowDefinitionId": "order_processing", '
            '"input": {...}}'
        )
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _BadRequest(f"unknown fields {unknown}; the fields are {sorted(_FIELDS)}")
    definition_id = body.get("workflowDefinitionId")
    if not isinstance(definition_id, str) or not definition_id:
        raise _BadRequest("workflowDefinitionId is required: the id of a registered definition")
    for name in ("version", "businessKey", "idempotencyKey"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise _BadRequest(f"{name} must be a string, got {json.dumps(body[name])[:100]}")
    business_key = body.get("businessKey")
    if business_key is not None and len(business_key) > MAX_BUSINESS_KEY_LENGTH:
        raise _BadRequest(
            f"businessKey is {len(business_key):,} characters, over the limit of "
            f"{MAX_BUSINESS_KEY_LENGTH:,}; use a shorter key"
        )
    key = body.get("idempotencyKey") or header_key
    if body.get("idempotencyKey") and header_key and body["idempotencyKey"] != header_key:
        raise _BadRequest("the Idempotency-Key header and idempotencyKey differ; send one of them")
    if key is not None and not _KEY.match(key):
        raise _BadRequest("the idempotency key must be 1 to 200 printable ASCII characters")
    return StartRequest(
        definition_id=definition_id,
        version=body.get("version"),
        # null is the same as no input: {} (the column holds a JSON value, never SQL NULL).
        input=body["input"] if body.get("input") is not None else {},
        business_key=body.get("businessKey"),
        idempotency_key=key,
    )


def _instance_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise _BadRequest(
            f"{raw!r} is not a workflow instance id; instance ids are UUIDs such as "
            "3f1c2a9e-8d4b-4c1e-9a51-2b7f6d0e4c11",
            kind="invalid-instance-id",
            title="Invalid Instance Id",
        ) from None


def _time_parameter(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _BadRequest(
            f"{name} must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z, got {raw!r}", name
        ) from None
    if moment.tzinfo is None:
        raise _BadRequest(f"{name} needs a time zone (e.g. a trailing Z), got {raw!r}", name)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _BadRequest(
            f"{name} is outside the range of dates (years 1 to 9999 in UTC), got {raw!r}", name
        ) from None


def _containment(prefix: str) -> dict[str, Any] | None:
    """``?input.order.id=ORD-1`` -> ``{"order": {"id": "ORD-1"}}`` (values parsed as JSON)."""
    result: dict[str, Any] = {}
    for name, raw in request.args.items(multi=True):
        if not name.startswith(prefix + "."):
            continue
        path = name[len(prefix) + 1 :].split(".")
        if not all(path):
            raise _BadRequest(f"{name} has an empty path segment", name)
        try:
            value = loads_strict(raw)
            check_depth(value, what=name)
            check_storable(value, what=name)
        except (ValueError, RecursionError):  # Unstorable is a ValueError: keep the text
            value = raw
        node = result
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _BadRequest(f"{name} conflicts with another {prefix} filter", name)
        node[path[-1]] = value
    return result or None


def _parent_parameter() -> uuid.UUID | None:
    raw = request.args.get("parentId")
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise _BadRequest(
            f"parentId must be a workflow instance id (a UUID), got {raw[:100]!r}", "parentId"
        ) from None


def _history_cursor(raw: str | None) -> int:
    """The ``cursor`` of a history page: the ``seq`` after which it starts (0: the first)."""
    if raw is None or raw == "":
        return 0
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    raise _BadRequest(
        f"cursor must be the nextCursor of the previous history page (a whole number), "
        f"got {raw[:100]!r}",
        "cursor",
    )


def _statuses() -> list[str] | None:
    values = [v for raw in request.args.getlist("status") for v in raw.split(",") if v]
    unknown = sorted(set(values) - set(INSTANCE_STATUSES))
    if unknown:
        raise _BadRequest(
            f"status {unknown} is not an instance status; use {', '.join(INSTANCE_STATUSES)}",
            "status",
        )
    return values or None


def instance_routes(
    runtime: InstanceRuntime, database: Database, catalog: InterpreterSource
) -> Blueprint:
    """The instance routes, relative to the API's ``/v1`` prefix: ``runtime`` starts and
    commands instances, ``database`` (``Database.api_reads()``) serves the reads, ``catalog``
    describes definitions."""
    routes = Blueprint("instances", __name__, url_prefix="/workflow-instances")

    async def namespace_of(record: InstanceRecord | InstanceChild) -> str:
        interpreter = await catalog.interpreter(record.definition_id, record.definition_version)
        return interpreter.workflow.namespace

    async def visible(children: tuple[InstanceChild, ...]) -> tuple[InstanceChild, ...]:
        """The children the caller may see (a child may run in another namespace)."""
        namespaces = visible_namespaces()
        if namespaces is None:
            return children
        return tuple([c for c in children if await namespace_of(c) in namespaces])

    async def hide_outside(record: InstanceRecord) -> None:
        """A read of an instance outside the caller's namespaces: 404, as if it did not exist."""
        namespaces = visible_namespaces()
        if namespaces is not None and await namespace_of(record) not in namespaces:
            raise InstanceNotFound(
                f"workflow instance {record.instance_id} not found",
                instance_id=record.instance_id,
            )

    async def forbid_write(instance_id: uuid.UUID) -> None:
        """A command on an instance outside the caller's namespaces: 403."""
        g.audit_target = str(instance_id)
        if visible_namespaces() is not None:
            record = await get_instance(database, instance_id)
            g.audit_namespace = await namespace_of(record)
            forbid_outside(g.audit_namespace, "instances")

    @routes.errorhandler(InstanceNotFound)
    async def not_found(exc: InstanceNotFound) -> Response:
        return problem_response(404, "instance-not-found", "Instance Not Found", str(exc))

    @routes.errorhandler(_BadRequest)
    async def bad_request(exc: _BadRequest) -> Response:
        return _bad(exc)

    @routes.post("")
    async def start() -> Response:
        raw = await request.get_data(as_text=False)
        assert isinstance(raw, bytes)
        body = parse_json_body(raw) if raw.strip() else None
        start_request = _parse_start(body, request.headers.get("Idempotency-Key"))
        try:
            if visible_namespaces() is not None:
                definition = await get_definition(
                    database, start_request.definition_id, start_request.version
                )
                g.audit_namespace = definition.namespace
                forbid_outside(definition.namespace, "instances")
            record, created = await runtime.start_instance(start_request)
        except DefinitionNotFound as exc:
            detail = str(exc)
            if visible_namespaces() is not None:  # the message lists ids of every namespace
                detail = (
                    f"no workflow definition {start_request.definition_id!r} in your "
                    "namespaces; check the id and version"
                )
            return problem_response(404, "definition-not-found", "Definition Not Found", detail)
        except Unstorable as exc:
            raise unstorable_problem(exc) from None
        except InputInvalid as exc:
            return problem_response(
                422,
                "invalid-input",
                "Invalid Input",
                str(exc),
                problems=exc.problems,
            )
        if not created and record.definition_id != start_request.definition_id:
            # Idempotency keys are global: a replay answers only for the start it repeats.
            return problem_response(
                409,
                "idempotency-key-conflict",
                "Idempotency Key Conflict",
                "this idempotency key was used to start another workflow definition; use a new "
                "key for this start",
            )
        if not created:
            await hide_outside(record)
        location = f"{request.path.rstrip('/')}/{record.instance_id}"
        answer = await _instance_json(catalog, record)
        g.audit_target, g.audit_namespace = str(record.instance_id), answer["namespace"]
        return json_response(
            answer,
            201 if created else 200,
            headers={"Location": location},
        )

    @routes.get("")
    async def listing() -> Response:
        limit = page_size(request.args.get("limit"))
        if isinstance(limit, Response):
            return limit
        try:
            page = await list_instances(
                database,
                definition_id=request.args.get("workflowDefinitionId") or None,
                version=request.args.get("version") or None,
                status=_statuses(),
                business_key_contains=request.args.get("businessKey") or None,
                created_after=_time_parameter("createdAfter"),
                created_before=_time_parameter("createdBefore"),
                updated_after=_time_parameter("updatedAfter"),
                updated_before=_time_parameter("updatedBefore"),
                input_contains=_containment("input"),
                context_contains=_containment("context"),
                namespaces=visible_namespaces(),
                parent_id=_parent_parameter(),
                cursor=request.args.get("cursor") or None,
                limit=limit,
            )
        except InvalidCursor as exc:
            raise _BadRequest(str(exc), "cursor") from None
        return json_response(
            {
                "items": [await _instance_json(catalog, r) for r in page.items],
                "nextCursor": page.next_cursor,
                "totalEstimate": page.total_estimate,
            }
        )

    @routes.get("/<raw_id>")
    async def one(raw_id: str) -> Response:
        instance_id = _instance_id(raw_id)
        wait = request.args.get("wait")
        if wait is not None:
            if visible_namespaces() is not None:  # nobody waits on what they cannot see
                await hide_outside(await get_instance(database, instance_id))
            seconds = parse_duration(wait)
            if seconds is None or not 0 <= seconds <= MAX_WAIT_SECONDS:
                raise _BadRequest(
                    f"wait must be a duration from 0s to {MAX_WAIT_SECONDS:g}s such as 30s, "
                    f"got {wait!r}",
                    "wait",
                )
            await runtime.wait_terminal(
                instance_id, seconds, lambda: get_instance(database, instance_id)
            )
        # After ?wait= the primary: the wait ended on its state, which a replica may lag.
        loaded, children = await load_instance_family(
            database, instance_id, limit=MAX_CHILDREN_SHOWN, read_only=wait is None
        )
        await hide_outside(loaded.record)
        return json_response(
            await _instance_json(catalog, loaded.record, loaded.snapshot, await visible(children))
        )

    async def command(raw_id: str, action: str) -> Response:
        instance_id = _instance_id(raw_id)
        await forbid_write(instance_id)
        try:
            await runtime.command(instance_id, action)
        except InvalidStatusTransition as exc:
            return problem_response(409, "invalid-transition", "Invalid Transition", str(exc))
        loaded, children = await load_instance_family(
            database, instance_id, limit=MAX_CHILDREN_SHOWN
        )
        return json_response(
            await _instance_json(catalog, loaded.record, loaded.snapshot, await visible(children))
        )

    @routes.post("/<raw_id>/cancel")
    async def cancel(raw_id: str) -> Response:
        return await command(raw_id, "cancel")

    @routes.post("/<raw_id>/suspend")
    async def suspend(raw_id: str) -> Response:
        return await command(raw_id, "suspend")

    @routes.post("/<raw_id>/resume")
    async def resume(raw_id: str) -> Response:
        return await command(raw_id, "resume")

    @routes.get("/<raw_id>/history")
    async def history(raw_id: str) -> Response:
        instance_id = _instance_id(raw_id)
        if visible_namespaces() is not None:
            await hide_outside(await get_instance(database, instance_id))
        limit = page_size(request.args.get("limit"), DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE)
        if isinstance(limit, Response):
            return limit
        after = _history_cursor(request.args.get("cursor"))
        # One entry more than the page tells whether another page follows.
        entries = await instance_history(database, instance_id, after_seq=after, limit=limit + 1)
        page = entries[:limit]
        return json_response(
            {
                "items": [
                    {
                        "seq": e.seq,
                        "kind": e.kind,
                        "taskRef": e.task_ref or None,
                        "at": e.at.isoformat(),
                        "details": e.details,
                    }
                    for e in page
                ],
                "nextCursor": str(page[-1].seq) if len(entries) > limit else None,
            }
        )

    return routes
