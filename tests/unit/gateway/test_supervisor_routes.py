"""GET /supervisor: the live supervision tree as JSON, bounded by depth and paging."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
import trio.testing
from quart_trio import QuartTrio

from workflow_orchestrator.actors import Actor, ActorContext, ActorSystem
from workflow_orchestrator.actors.testing import open_checked_actor_system
from workflow_orchestrator.gateway import register_supervisor_routes
from workflow_orchestrator.supervision import (
    ActorSpec,
    Backoff,
    Restart,
    ServiceSpec,
    SupervisorSpec,
)


class Instance(Actor[str]):
    async def receive(self, ctx: ActorContext[str], message: str) -> None:
        raise RuntimeError(f"bad input {message!r}")


async def run_service(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    await trio.sleep_forever()


@pytest.fixture
async def system() -> Any:
    """A service-shaped tree: storage, 250 instances, a management gateway."""
    guardian = SupervisorSpec(
        name="user",
        children=[
            ServiceSpec(name="storage", run=run_service),
            SupervisorSpec(name="instances", backoff=Backoff.none(), max_restarts=10),
            ServiceSpec(name="management-gateway", run=functools.partial(run_service)),
        ],
    )
    async with open_checked_actor_system(guardian=guardian) as system:
        instances = system.lookup_supervisor("/user/instances")
        for i in range(250):
            await instances.start_child(
                ActorSpec(name=f"i{i:03d}", factory=Instance, restart=Restart.TRANSIENT)
            )
        yield system


def make_app(system: ActorSystem) -> QuartTrio:
    app = QuartTrio(__name__)
    register_supervisor_routes(app, system)
    return app


async def get(system: ActorSystem, url: str) -> tuple[int, str, Any]:
    client = make_app(system).test_client()
    response = await client.get(url)
    return response.status_code, response.content_type, await response.get_json()


async def test_whole_tree(system: ActorSystem) -> None:
    """GET /supervisor shows the root supervisor and the services under it."""
    status, content_type, body = await get(system, "/supervisor?depth=1")
    assert (status, content_type) == (200, "application/json")
    assert body["path"] == "/user"
    assert body["kind"] == "supervisor"
    assert body["strategy"] == "one_for_one"
    assert [(c["name"], c["kind"], c["state"]) for c in body["children"]] == [
        ("storage", "service", "running"),
        ("instances", "supervisor", "running"),
        ("management-gateway", "service", "running"),
    ]
    instances = body["children"][1]
    assert instances["childCount"] == 250
    assert instances["childStates"] == {"running": 250}
    assert "children" not in instances  # depth exhausted: counts only


async def test_subtree_is_paged(system: ActorSystem) -> None:
    """A large child list is summarised by state and paged with offset/limit."""
    status, _, body = await get(system, "/supervisor/user/instances?depth=1&offset=100&limit=20")
    assert status == 200
    assert body["childCount"] == 250
    assert [c["name"] for c in body["children"]] == [f"i{i:03d}" for i in range(100, 120)]
    assert body["childrenPage"] == {"offset": 100, "limit": 20, "returned": 20, "total": 250}
    first = body["children"][0]
    assert first["mailboxDepth"] == 0
    assert first["mailboxCapacity"] == 64
    assert first["lastFailure"] is None


async def test_actor_node_shows_last_failure(system: ActorSystem) -> None:
    """An actor's node carries its restart count and last failure (type, message, time)."""
    system.lookup("/user/instances/i007").tell_nowait("x")
    await trio.testing.wait_all_tasks_blocked()
    status, _, body = await get(system, "/supervisor/user/instances/i007")
    assert status == 200
    assert body["restartCount"] == 1
    assert body["lastFailure"]["type"] == "RuntimeError"
    assert body["lastFailure"]["message"] == "bad input 'x'"
    assert body["lastFailure"]["time"].endswith("Z")


async def test_default_depth_bounds_the_response(system: ActorSystem) -> None:
    """Without parameters at most 100 children per node are listed."""
    _, _, body = await get(system, "/supervisor")
    assert len(body["children"][1]["children"]) == 100


async def test_unknown_path_is_problem_json(system: ActorSystem) -> None:
    """An unknown path answers 404 application/problem+json naming the path."""
    status, content_type, body = await get(system, "/supervisor/user/nope")
    assert (status, content_type) == (404, "application/problem+json")
    assert body["type"] == "https://workflow-orchestrator.dev/problems/supervisor-path-not-found"
    assert body["title"] == "Supervisor Path Not Found"
    assert body["status"] == 404
    assert body["detail"].startswith("no actor at path '/user/nope'; children of its parent: [")
    assert body["detail"].endswith("; GET /supervisor shows the whole tree")


async def test_bad_depth_is_problem_json(system: ActorSystem) -> None:
    """A malformed depth answers 400 problem+json saying the allowed range."""
    status, content_type, body = await get(system, "/supervisor?depth=deep")
    assert (status, content_type) == (400, "application/problem+json")
    assert body["detail"] == "query parameter 'depth' must be an integer from 0 to 10, got 'deep'"
