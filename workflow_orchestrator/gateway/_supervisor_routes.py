"""``GET /supervisor`` on the management port: the live supervision tree as JSON.

``GET /supervisor`` shows the whole tree from the root supervisor, ``GET /supervisor/{path}``
the subtree at an actor path (``/supervisor/user/instances``). Query parameters keep the
response small for trees of 100,000 actors:

- ``depth`` (default 3, at most 10): levels of children expanded below the node; deeper
  nodes carry only ``childCount`` and ``childStates`` (counts per state).
- ``limit`` (default 100, at most 1000) children listed per node; ``offset`` (default 0)
  pages the node's own children. ``childrenPage`` says which slice is shown.

Unknown paths answer 404 and bad parameters 400, both ``application/problem+json``.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from workflow_orchestrator.actors import ActorNotFound, ActorSystem
from workflow_orchestrator.gateway._problems import problem_response
from workflow_orchestrator.supervision import ChildSnapshot

__all__ = ["register_supervisor_routes"]

DEFAULT_DEPTH = 3
MAX_DEPTH = 10
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class _BadParameter(ValueError):
    pass


def _int_parameter(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _BadParameter(
            f"query parameter {name!r} must be an integer from {low} to {high}, got {raw!r}"
        )
    return value


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def snapshot_to_json(snapshot: ChildSnapshot, *, limit: int) -> dict[str, Any]:
    """The camelCase JSON form of a snapshot (recursively)."""
    failure = snapshot.last_failure
    body: dict[str, Any] = {
        "path": snapshot.path,
        "name": snapshot.name,
        "kind": snapshot.kind,
        "state": snapshot.state,
        "restartCount": snapshot.restart_count,
        "lastFailure": None
        if failure is None
        else {"type": failure.type, "message": failure.message, "time": _iso(failure.time)},
        "uptimeSeconds": round(snapshot.uptime_seconds, 3),
    }
    if snapshot.kind == "actor":
        body["mailboxDepth"] = snapshot.mailbox_depth
        body["mailboxCapacity"] = snapshot.mailbox_capacity
    if snapshot.kind == "supervisor":
        body["strategy"] = snapshot.strategy
        body["childCount"] = snapshot.child_count
        body["childStates"] = snapshot.child_states
        if snapshot.children:
            body["children"] = [snapshot_to_json(child, limit=limit) for child in snapshot.children]
            body["childrenPage"] = {
                "offset": snapshot.children_offset,
                "limit": limit,
                "returned": len(snapshot.children),
                "total": snapshot.child_count,
            }
    return body


#: The response header naming the replica whose tree is shown (a worker of a group).
REPLICA_HEADER = "Workflow-Replica"


def register_supervisor_routes(
    app: QuartTrio, system: ActorSystem, *, replica: str | None = None
) -> None:
    """Add ``GET /supervisor`` and ``GET /supervisor/<path>`` for ``system`` to ``app``.

    ``replica`` (a worker of ``server.workers`` > 1: each has its own tree) is named in the
    ``Workflow-Replica`` header and as ``replica`` in the body's top node."""

    def render(path: str | None) -> Response:
        try:
            depth = _int_parameter("depth", DEFAULT_DEPTH, 0, MAX_DEPTH)
            limit = _int_parameter("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            offset = _int_parameter("offset", 0, 0, 2**31)
        except _BadParameter as exc:
            return problem_response(
                400, "invalid-query-parameter", "Invalid Query Parameter", str(exc)
            )
        try:
            snapshot = system.statistics(path, depth=depth, offset=offset, limit=limit)
        except ActorNotFound as exc:
            return problem_response(
                404,
                "supervisor-path-not-found",
                "Supervisor Path Not Found",
                f"{exc}; GET /supervisor shows the whole tree",
            )
        body = snapshot_to_json(snapshot, limit=limit)
        headers = {}
        if replica is not None:
            body["replica"] = replica
            headers[REPLICA_HEADER] = replica
        return Response(
            json.dumps(body), status=200, content_type="application/json", headers=headers
        )

    @app.get("/supervisor")
    async def supervisor_tree() -> Response:
        return render(None)

    @app.get("/supervisor/<path:path>")
    async def supervisor_subtree(path: str) -> Response:
        return render("/" + path)
