"""Subflows (``run.workflow``) in the running service on PostgreSQL: a durable child instance
per task, its end delivered to its parent, faults, ``await: false``, the cancel cascade, the
definition check, the depth limit and what the API shows."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.events import INSTANCES, start, wait_for
from tests.support.openapi import assert_matches_openapi
from tests.support.service import InProcessService, open_service, register_yaml
from tests.support.spec import require_spec

pytestmark = pytest.mark.integration

VALIDATION = "https://serverlessworkflow.io/spec/1.0.0/errors/validation"

REGISTER_CUSTOMER = """\
document: {dsl: '1.0.3', namespace: test, name: register-customer, version: '0.1.0'}
do:
  - register:
      set:
        registered: ${ .customer }
        customerId: CUST-1
"""

FAILING_CHILD = """\
document: {dsl: '1.0.3', namespace: test, name: failing-child, version: '1.0.0'}
do:
  - refuse:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
          status: 422
          title: Bad Customer
          detail: the customer has no name
"""

# Waits until cancelled (a listen for an event nobody sends), in a subflow of its own.
LISTENING_CHILD = """\
document: {dsl: '1.0.3', namespace: test, name: listening-child, version: '1.0.0'}
do:
  - hear:
      listen:
        to:
          one:
            with: {type: com.example.never}
"""

MIDDLE = """\
document: {dsl: '1.0.3', namespace: test, name: middle, version: '1.0.0'}
do:
  - runGrandchild:
      run:
        workflow: {namespace: test, name: listening-child, version: '1.0.0'}
"""


def parent(name: str, body: str) -> str:
    """A parent definition ``name`` (namespace test, version 1.0.0) doing ``body``."""
    return f"document: {{dsl: '1.0.3', namespace: test, name: {name}, version: '1.0.0'}}\n{body}"


AWAITS = parent(
    "awaits",
    """\
do:
  - prepare:
      set: {customer: {name: Ada}}
  - registerCustomer:
      run:
        workflow:
          namespace: test
          name: register-customer
          version: '0.1.0'
          input:
            customer: ${ .customer.name }
""",
)

CATCHES = parent(
    "catches",
    """\
do:
  - guarded:
      try:
        - runChild:
            run:
              workflow: {namespace: test, name: failing-child, version: '1.0.0'}
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
        as: failure
        do:
          - remember:
              set:
                caught: ${ $failure.detail }
                status: ${ $failure.status }
""",
)

UNCAUGHT = parent(
    "uncaught",
    """\
do:
  - runChild:
      run:
        workflow: {namespace: test, name: failing-child, version: '1.0.0'}
""",
)

FIRE_AND_FORGET = parent(
    "fire-and-forget",
    """\
do:
  - prepare:
      set: {kept: true}
  - runChild:
      run:
        workflow: {namespace: test, name: listening-child, version: '1.0.0'}
        await: false
""",
)

CASCADE = parent(
    "cascade",
    """\
do:
  - runMiddle:
      run:
        workflow: {namespace: test, name: middle, version: '1.0.0'}
""",
)

UNKNOWN = parent(
    "unknown",
    """\
do:
  - runMissing:
      run:
        workflow: {namespace: test, name: nobody, version: '2.0.0'}
""",
)

RECURSIVE = parent(
    "recursive",
    """\
do:
  - again:
      run:
        workflow: {namespace: test, name: recursive, version: '1.0.0'}
""",
)


async def finished(app: InProcessService, instance_id: str) -> dict[str, Any]:
    """The instance once terminal (a long poll)."""
    response = await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "30s"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] in ("completed", "faulted", "cancelled"), body
    return body


async def children(app: InProcessService, instance_id: str) -> list[dict[str, Any]]:
    """The children of the instance, as ``GET ?parentId=`` lists them."""
    response = await app.api.get(INSTANCES, params={"parentId": instance_id})
    assert response.status_code == 200, response.text
    assert_matches_openapi("GET", "/v1/workflow-instances", 200, response.json())
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def only_child(app: InProcessService, instance_id: str) -> str:
    """The id of the one child of the instance, once it exists."""
    while True:
        found = await children(app, instance_id)
        if found:
            break
        await trio.sleep(0.05)
    (child,) = found
    child_id: str = child["id"]
    return child_id


async def test_the_parent_continues_with_the_child_output(database_url: str) -> None:
    """The parent parks until its child completes and goes on with the child's output; the API
    shows the child among the parent's children and the parent as the child's parent."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, REGISTER_CUSTOMER)
            await register_yaml(app, AWAITS)
            parent_id = await start(app, "awaits")
            done = await finished(app, parent_id)
            listed = await children(app, parent_id)
            child = (await app.api.get(f"{INSTANCES}/{listed[0]['id']}")).json()
            top = (await app.api.get(INSTANCES, params={"workflowDefinitionId": "awaits"})).json()
            history = (await app.api.get(f"{INSTANCES}/{parent_id}/history")).json()
    assert done["output"] == {"registered": "Ada", "customerId": "CUST-1"}
    assert_matches_openapi("GET", "/v1/workflow-instances/{id}", 200, done)
    assert done["parentId"] is None
    assert done["children"] == [
        {
            "id": listed[0]["id"],
            "workflowDefinitionId": "register-customer",
            "version": "0.1.0",
            "status": "completed",
        }
    ]
    assert len(listed) == 1 and listed[0]["parentId"] == parent_id
    assert child["parentId"] == parent_id and child["input"] == {"customer": "Ada"}
    assert child["status"] == "completed" and child["children"] == []
    assert top["items"][0]["parentId"] is None and "children" not in top["items"][0]
    started = [e for e in history["items"] if e["kind"] == "subflow.started"]
    assert [e["details"]["childId"] for e in started] == [listed[0]["id"]]


async def test_a_child_fault_is_caught_by_the_parent(database_url: str) -> None:
    """A faulted child is an error of the child's type and status in the parent, caught by
    its ``try``; the detail names the child."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, FAILING_CHILD)
            await register_yaml(app, CATCHES)
            parent_id = await start(app, "catches")
            done = await finished(app, parent_id)
            child_id = await only_child(app, parent_id)
            child = (await app.api.get(f"{INSTANCES}/{child_id}")).json()
    assert done["status"] == "completed"
    assert done["output"] == {
        "caught": f"subflow test/failing-child:1.0.0 (instance {child_id}) faulted: the "
        "customer has no name",
        "status": 422,
    }
    assert child["status"] == "faulted" and child["error"]["type"] == VALIDATION


async def test_an_uncaught_child_fault_faults_the_parent(database_url: str) -> None:
    """Without ``try`` the child's fault faults the parent with the child's problem at the
    parent's run task."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, FAILING_CHILD)
            await register_yaml(app, UNCAUGHT)
            parent_id = await start(app, "uncaught")
            done = await finished(app, parent_id)
            child_id = await only_child(app, parent_id)
    assert done["status"] == "faulted"
    assert done["error"] == {
        "type": VALIDATION,
        "status": 422,
        "title": "Bad Customer",
        "instance": "/do/0/runChild",
        "detail": f"subflow test/failing-child:1.0.0 (instance {child_id}) faulted: the "
        "customer has no name",
    }


async def test_without_await_the_parent_completes_at_once(database_url: str) -> None:
    """With ``await: false`` the parent completes with its own data while its child still
    waits; the child is there, named by the parent."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, LISTENING_CHILD)
            await register_yaml(app, FIRE_AND_FORGET)
            parent_id = await start(app, "fire-and-forget")
            done = await finished(app, parent_id)
            child_id = await only_child(app, parent_id)
            child = await wait_for(app, child_id, "waiting")
    assert done["status"] == "completed" and done["output"] == {"kept": True}
    ((shown,),) = (done["children"],)
    assert (shown["id"], shown["workflowDefinitionId"]) == (child_id, "listening-child")
    assert shown["status"] in ("pending", "running", "waiting")
    assert child["parentId"] == parent_id and child["activeTasks"] == ["/do/0/hear"]


async def test_cancelling_the_parent_cancels_its_descendants(database_url: str) -> None:
    """A cancel of a parent waiting for its child, itself waiting for a grandchild, cancels
    all three; the cascade is in each descendant's history."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            for text in (LISTENING_CHILD, MIDDLE, CASCADE):
                await register_yaml(app, text)
            parent_id = await start(app, "cascade")
            middle_id = await only_child(app, parent_id)
            grandchild_id = await only_child(app, middle_id)
            await wait_for(app, grandchild_id, "waiting")
            await wait_for(app, parent_id, "waiting")
            cancelled = await app.api.post(f"{INSTANCES}/{parent_id}/cancel")
            statuses = [
                (await app.api.get(f"{INSTANCES}/{i}")).json()["status"]
                for i in (parent_id, middle_id, grandchild_id)
            ]
            history = (await app.api.get(f"{INSTANCES}/{grandchild_id}/history")).json()
    assert cancelled.status_code == 200, cancelled.text
    assert_matches_openapi("POST", "/v1/workflow-instances/{id}/cancel", 200, cancelled.json())
    assert cancelled.json()["children"][0]["status"] == "cancelled"
    assert statuses == ["cancelled", "cancelled", "cancelled"]
    last = history["items"][-1]
    assert last["kind"] == "workflow.cancelled"
    assert last["details"] == {
        "reason": "its parent workflow instance was cancelled",
        "parentId": middle_id,
    }


async def test_an_unknown_definition_faults_with_a_configuration_error(
    database_url: str,
) -> None:
    """A task naming a definition nobody registered faults the parent with a configuration
    error naming it and what to do, and starts no child."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, UNKNOWN)
            parent_id = await start(app, "unknown")
            done = await finished(app, parent_id)
    assert done["status"] == "faulted"
    assert done["error"]["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/configuration"
    assert done["error"]["detail"] == (
        "run.workflow names workflow test/nobody:2.0.0, which is not registered (namespace, "
        "name and version of its document); register it first"
    )
    assert done["children"] == []


async def test_a_workflow_running_itself_stops_at_the_depth_limit(database_url: str) -> None:
    """A workflow that runs itself ends at ``workflows.limits.subflowDepth``: the deepest
    instance faults with the limit's error, and so does every parent up to the top."""
    settings = {"workflows.limits.subflowDepth": 2}
    with trio.fail_after(60):
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, RECURSIVE)
            top_id = await start(app, "recursive")
            done = await finished(app, top_id)
            first = await only_child(app, top_id)
            second = await only_child(app, first)
            deepest = await finished(app, second)
            below = await children(app, second)
    assert deepest["status"] == "faulted" and below == []
    assert deepest["error"]["detail"] == (
        "run.workflow would start test/recursive:1.0.0 3 subflows deep (2 allowed), over the "
        "limit workflows.limits.subflowDepth; raise it or stop the recursion of workflows that "
        "run themselves"
    )
    assert done["status"] == "faulted"
    assert done["error"]["type"].endswith("/limit-exceeded")
    assert "workflows.limits.subflowDepth" in done["error"]["detail"]


async def test_the_official_run_subflow_example(database_url: str) -> None:
    """The DSL's ``run-subflow.yaml`` runs its registered ``test/register-customer`` 0.1.0
    child and completes with the child's output."""
    example = (require_spec() / "examples" / "run-subflow.yaml").read_text(encoding="utf-8")
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, REGISTER_CUSTOMER)
            await register_yaml(app, example)
            parent_id = await start(app, "run-subflow", {"user": "ada"})
            done = await finished(app, parent_id)
            child_id = await only_child(app, parent_id)
            child = (await app.api.get(f"{INSTANCES}/{child_id}")).json()
    assert done["status"] == "completed"
    # The example's input `customer: .user` is a plain string, not a runtime expression.
    assert child["input"] == {"customer": ".user"}
    assert done["output"] == child["output"] == {"registered": ".user", "customerId": "CUST-1"}
