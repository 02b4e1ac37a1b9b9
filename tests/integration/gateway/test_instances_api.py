"""The instances API on the running service (in process) against the real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import trio

from tests.support.openapi import assert_matches_openapi
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

INSTANCES = "/v1/workflow-instances"

PRICING = """\
document: {dsl: '1.0.3', namespace: shop, name: pricing, version: '1.0.0'}
input:
  schema:
    format: json
    document:
      type: object
      required: [orderId]
      properties:
        orderId: {type: string}
        amount: {type: number}
do:
  - price:
      set:
        orderId: ${ .orderId }
        total: ${ (.amount // 0) * 2 }
  - decide:
      switch:
        - big:
            when: ${ .total > 100 }
            then: flag
        - default:
            then: exit
  - flag:
      set:
        orderId: ${ .orderId }
        total: ${ .total }
        flagged: true
"""

SLOW = """\
document: {dsl: '1.0.3', namespace: shop, name: slow, version: '1.0.0'}
do:
  - first:
      set: {step: 1}
  - pause:
      wait: {seconds: 30}
  - last:
      set: {step: 2}
"""


def checked(method: str, template: str, response: httpx.Response) -> Any:
    """The body, after checking it against the OpenAPI document."""
    body = response.json()
    assert_matches_openapi(method, template, response.status_code, body)
    return body


async def test_start_and_wait_for_completion(database_url: str) -> None:
    """An instance starts (201), runs to completion and is read back with ?wait."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, PRICING)
            started = await app.api.post(
                INSTANCES,
                json={"workflowDefinitionId": "pricing", "input": {"orderId": "A-1", "amount": 60}},
            )
            body = checked("POST", INSTANCES, started)
            assert started.status_code == 201
            assert started.headers["Location"] == f"/api{INSTANCES}/{body['id']}"
            done = await app.api.get(f"{INSTANCES}/{body['id']}", params={"wait": "10s"})
            final = checked("GET", INSTANCES + "/{id}", done)
            history = await app.api.get(f"{INSTANCES}/{body['id']}/history")
            entries = checked("GET", INSTANCES + "/{id}/history", history)["items"]
    assert (body["namespace"], body["name"], body["version"]) == ("shop", "pricing", "1.0.0")
    assert final["status"] == "completed"
    assert final["output"] == {"orderId": "A-1", "total": 120, "flagged": True}
    assert final["completedAt"] is not None and final["startedAt"] is not None
    kinds = [(e["kind"], e["taskRef"]) for e in entries]
    assert kinds[0] == ("workflow.started", None)
    assert ("task.completed", "/do/2/flag") in kinds
    assert kinds[-1] == ("workflow.completed", None)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


async def test_start_errors(database_url: str) -> None:
    """Unknown definitions are 404, bad input 422 with pointers, bad bodies 400."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, PRICING)
            unknown = await app.api.post(INSTANCES, json={"workflowDefinitionId": "nope"})
            invalid = await app.api.post(
                INSTANCES, json={"workflowDefinitionId": "pricing", "input": {"amount": "x"}}
            )
            no_id = await app.api.post(INSTANCES, json={"input": {}})
            extra = await app.api.post(
                INSTANCES, json={"workflowDefinitionId": "pricing", "inputs": {}}
            )
            not_json = await app.api.post(
                INSTANCES, content=b"{", headers={"Content-Type": "application/json"}
            )
            for response in (unknown, invalid, no_id, extra, not_json):
                checked("POST", INSTANCES, response)
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("definition 'nope' not found; registered: [")
    assert invalid.status_code == 422
    assert {(p["pointer"], p["rule"]) for p in invalid.json()["problems"]} == {
        ("", "schema"),
        ("/amount", "schema"),
    }
    assert no_id.status_code == 400
    assert no_id.json()["detail"] == (
        "workflowDefinitionId is required: the id of a registered definition"
    )
    assert extra.json()["detail"] == (
        "unknown fields ['inputs']; the fields are ['businessKey', 'idempotencyKey', 'input', "
        "'version', 'workflowDefinitionId']"
    )
    assert not_json.status_code == 400


async def test_concurrent_idempotent_starts_create_one_instance(database_url: str) -> None:
    """50 parallel starts with one Idempotency-Key create exactly one instance."""
    answers: list[httpx.Response] = []
    with trio.fail_after(120):
        async with open_service(database_url) as app:
            await register_yaml(app, PRICING)

            async def start() -> None:
                answers.append(
                    await app.api.post(
                        INSTANCES,
                        json={"workflowDefinitionId": "pricing", "input": {"orderId": "K"}},
                        headers={"Idempotency-Key": "order-K"},
                    )
                )

            async with trio.open_nursery() as nursery:
                for _ in range(50):
                    nursery.start_soon(start)
            listing = await app.api.get(INSTANCES, params={"workflowDefinitionId": "pricing"})
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert sorted(a.status_code for a in answers) == [200] * 49 + [201]
    assert len(listing.json()["items"]) == 1


async def test_list_filters_and_pagination(database_url: str) -> None:
    """Listing filters by definition, status, business key and input containment, and pages."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, PRICING)
            ids = []
            for n in range(5):
                started = await app.api.post(
                    INSTANCES,
                    json={
                        "workflowDefinitionId": "pricing",
                        "input": {"orderId": f"ORD-{n}", "amount": n},
                        "businessKey": f"customer-{n % 2}-order-{n}",
                    },
                )
                ids.append(started.json()["id"])
            for instance_id in ids:
                await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "10s"})
            by_input = checked(
                "GET", INSTANCES, await app.api.get(INSTANCES, params={"input.orderId": "ORD-3"})
            )
            by_key = await app.api.get(INSTANCES, params={"businessKey": "customer-1"})
            by_status = await app.api.get(INSTANCES, params={"status": "completed", "limit": 2})
            page_one = checked("GET", INSTANCES, by_status)
            page_two = await app.api.get(
                INSTANCES,
                params={"status": "completed", "limit": 2, "cursor": page_one["nextCursor"]},
            )
            bad_status = await app.api.get(INSTANCES, params={"status": "done"})
            bad_time = await app.api.get(INSTANCES, params={"createdAfter": "yesterday"})
            checked("GET", INSTANCES, bad_status)
            checked("GET", INSTANCES, bad_time)
    assert [i["id"] for i in by_input["items"]] == [ids[3]]
    assert {i["id"] for i in by_key.json()["items"]} == {ids[1], ids[3]}
    assert len(page_one["items"]) == 2 and page_one["totalEstimate"] == 5
    assert len(page_two.json()["items"]) == 2
    assert not {i["id"] for i in page_one["items"]} & {i["id"] for i in page_two.json()["items"]}
    assert bad_status.status_code == 400 and bad_status.json()["parameter"] == "status"
    assert bad_time.status_code == 400 and bad_time.json()["parameter"] == "createdAfter"


async def test_suspend_resume_and_cancel(database_url: str) -> None:
    """A waiting instance can be suspended, resumed and cancelled; wrong transitions are 409."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, SLOW)
            instance_id = (
                await app.api.post(INSTANCES, json={"workflowDefinitionId": "slow"})
            ).json()["id"]
            base = f"{INSTANCES}/{instance_id}"
            for _ in range(100):
                current = (await app.api.get(base)).json()
                if current["status"] == "waiting":
                    break
                await trio.sleep(0.05)
            assert current["activeTasks"] == ["/do/1/pause"]
            suspended = checked(
                "POST", INSTANCES + "/{id}/suspend", await app.api.post(base + "/suspend")
            )
            again = await app.api.post(base + "/suspend")
            resumed = checked(
                "POST", INSTANCES + "/{id}/resume", await app.api.post(base + "/resume")
            )
            cancelled = checked(
                "POST", INSTANCES + "/{id}/cancel", await app.api.post(base + "/cancel")
            )
            late = await app.api.post(base + "/resume")
            history = (await app.api.get(base + "/history")).json()["items"]
            missing = await app.api.get(f"{INSTANCES}/{uuid.uuid4()}")
            not_uuid = await app.api.get(f"{INSTANCES}/not-a-uuid")
            checked("POST", INSTANCES + "/{id}/suspend", again)
            checked("GET", INSTANCES + "/{id}", missing)
            checked("GET", INSTANCES + "/{id}", not_uuid)
    assert suspended["status"] == "suspended"
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"workflow instance {instance_id} is suspended; it can become suspended only from: "
        "pending, running, waiting"
    )
    assert resumed["status"] in ("running", "waiting")
    assert cancelled["status"] == "cancelled" and cancelled["completedAt"] is not None
    assert late.status_code == 409
    kinds = [entry["kind"] for entry in history]
    assert "workflow.suspended" in kinds and "workflow.resumed" in kinds
    assert kinds[-1] == "workflow.cancelled"
    assert missing.status_code == 404
    assert not_uuid.status_code == 400
