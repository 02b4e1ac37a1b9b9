"""A client's mistakes get a 4xx problem+json naming the problem, never a 500.

Every request here runs against the whole service in process on the real PostgreSQL: bodies
nested 100,000 deep, ``NaN``/``-Infinity`` and numbers out of range, the NUL character in a
body, a ``businessKey``, a definition, an event, a path or a query parameter, non-JSON bodies and
media types, and wrong types for every field. Each answer is checked against the OpenAPI
document too. Then the service is shown to be unharmed: an ordinary instance still completes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
import trio

from tests.support.openapi import assert_matches_openapi
from tests.support.service import InProcessService, open_service, register_yaml
from workflow_orchestrator.gateway import PROBLEM_BASE, PROBLEM_CONTENT_TYPE

pytestmark = pytest.mark.integration

DEFINITIONS = "/v1/workflow-definitions"
INSTANCES = "/v1/workflow-instances"
EVENTS = "/v1/events"
JSON = {"Content-Type": "application/json"}

ECHO = """\
document: {dsl: '1.0.3', namespace: test, name: echo, version: '1.0.0'}
do:
  - copy:
      set:
        got: ${ . }
"""

STEPS = """\
document: {dsl: '1.0.3', namespace: test, name: steps, version: '1.0.0'}
do:
  - one: {set: {n: 1}}
  - two: {set: {n: 2}}
  - three: {set: {n: 3}}
  - four: {set: {n: 4}}
"""


def problem(
    response: httpx.Response, status: int, kind: str, method: str, template: str
) -> dict[str, Any]:
    """The problem body, after checking status, media type, kind and the OpenAPI document."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + kind, body
    assert body["status"] == status
    assert_matches_openapi(
        method, template, status, body, content_type=response.headers["Content-Type"]
    )
    return body


async def start(app: InProcessService, content: bytes | str, **headers: str) -> httpx.Response:
    return await app.api.post(INSTANCES, content=content, headers={**JSON, **headers})


async def check_instance_bodies(app: InProcessService) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = problem(await start(app, deep), 400, "invalid-body", "POST", INSTANCES)
    assert "deeper than 256" in body["detail"]

    nested = {"workflowDefinitionId": "echo", "input": json.loads("[" * 300 + "]" * 300)}
    body = problem(await start(app, json.dumps(nested)), 400, "invalid-body", "POST", INSTANCES)
    assert body["reason"] == "depth"

    for literal in ("NaN", "-Infinity", "Infinity", "1e999", "-1e400"):
        text = '{"workflowDefinitionId": "echo", "input": {"x": ' + literal + "}}"
        body = problem(await start(app, text), 400, "invalid-body", "POST", INSTANCES)
        assert literal.lstrip("-") in body["detail"], body

    huge = '{"workflowDefinitionId": "echo", "input": ' + "9" * 5000 + "}"
    problem(await start(app, huge), 400, "invalid-body", "POST", INSTANCES)

    nul = {"workflowDefinitionId": "echo", "input": {"note": "a\u0000b"}}
    body = problem(await start(app, json.dumps(nul)), 422, "unstorable-value", "POST", INSTANCES)
    assert body["pointer"] == "/input/note" and body["reason"] == "nul", body

    key = {"workflowDefinitionId": "echo", "businessKey": "k\u0000"}
    body = problem(await start(app, json.dumps(key)), 422, "unstorable-value", "POST", INSTANCES)
    assert body["pointer"] == "/businessKey"

    surrogate = '{"workflowDefinitionId": "echo", "input": "\\ud800"}'
    body = problem(await start(app, surrogate), 422, "unstorable-value", "POST", INSTANCES)
    assert body["reason"] == "surrogate"

    for text in ("{", "not json", "\xff".encode("latin-1"), "[1]", "null", '"text"'):
        problem(await start(app, text), 400, "invalid-body", "POST", INSTANCES)

    for name, value in (
        ("workflowDefinitionId", 7),
        ("workflowDefinitionId", None),
        ("version", ["1"]),
        ("businessKey", {"a": 1}),
        ("idempotencyKey", 3.5),
        ("idempotencyKey", "has spaces"),
        ("businessKey", "k" * 1001),
        ("extra", 1),
    ):
        fields = {"workflowDefinitionId": "echo", name: value}
        body = problem(await start(app, json.dumps(fields)), 400, "invalid-body", "POST", INSTANCES)

    for media in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = await app.api.post(
            INSTANCES, content='{"workflowDefinitionId": "echo"}', headers={"Content-Type": media}
        )
        body = problem(response, 415, "unsupported-media-type", "POST", INSTANCES)
        assert media in body["detail"]


async def check_url_parameters(app: InProcessService) -> None:
    for params in (
        {"businessKey": "a\x00b"},
        {"workflowDefinitionId": "\x00"},
        {"input.order\x00": "1"},
        {"cursor": "\x00"},
    ):
        response = await app.api.get(INSTANCES, params=params)
        body = problem(response, 400, "invalid-query-parameter", "GET", INSTANCES)
        assert "NUL" in body["detail"]

    response = await app.api.get(DEFINITIONS, params={"text": "x\x00"})
    problem(response, 400, "invalid-query-parameter", "GET", DEFINITIONS)

    response = await app.api.get(f"{DEFINITIONS}/a%00b")
    body = problem(response, 400, "invalid-path-parameter", "GET", f"{DEFINITIONS}/{{id}}")
    assert body["parameter"] == "id"
    response = await app.api.get(f"{DEFINITIONS}/echo/versions/1%00")
    problem(
        response, 400, "invalid-path-parameter", "GET", f"{DEFINITIONS}/{{id}}/versions/{{version}}"
    )

    for params in (
        {"input.amount": '"\\u0000"'},  # parses as JSON holding NUL: kept as text
        {"input.x": "[" * 5000},
        {"input.x": "NaN"},
        {"createdAfter": "9999-12-31T23:00:00-05:00"},
        {"createdAfter": "0001-01-01T00:00:00+05:00"},
        {"limit": "²"},
        {"limit": "9" * 5000},
    ):
        response = await app.api.get(INSTANCES, params=params)
        assert response.status_code in (200, 400), (params, response.text)
        if response.status_code == 400:
            problem(response, 400, "invalid-query-parameter", "GET", INSTANCES)


async def check_definitions_and_events(app: InProcessService) -> None:
    headers = {"Content-Type": "application/yaml"}
    nul = ECHO.replace("name: echo", "name: poison").replace("${ . }", '"a\\0b"')
    response = await app.api.post(DEFINITIONS, content=nul, headers=headers)
    body = problem(response, 422, "invalid-definition", "POST", DEFINITIONS)
    assert body["problems"][0]["rule"] == "storable", body
    assert body["problems"][0]["pointer"] == "/do/0/copy/set/got", body
    for value in (".nan", "-.inf"):
        text = ECHO.replace("name: echo", "name: poison").replace("${ . }", value)
        response = await app.api.post(DEFINITIONS, content=text, headers=headers)
        body = problem(response, 422, "invalid-definition", "POST", DEFINITIONS)
        assert body["problems"][0]["pointer"] == "/do/0/copy/set/got", body
    deep = "document: {dsl: '1.0.3', namespace: t, name: deep, version: '1'}\nx: " + "[" * 50_000
    response = await app.api.post(DEFINITIONS, content=deep, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE

    for event in (
        '{"specversion": "1.0", "id": "e1", "source": "/t", "type": "t", "data": %s}'
        % ("[" * 100_000 + "]" * 100_000),
        '{"specversion": "1.0", "id": "e2", "source": "/t", "type": "t", "data": {"x": NaN}}',
        '{"specversion": "1.0", "id": "e3", "source": "/t", "type": "t", "data": "\\u0000"}',
        '{"specversion": "1.0", "id": "e4", "source": "/t", "type": "t", "data": "\\udc00"}',
        '{"specversion": "1.0", "id": "e5", "source": "/t", "type": "t", "data": %s}'
        % ("[" * 500 + "]" * 500),
    ):
        response = await app.api.post(
            EVENTS, content=event, headers={"Content-Type": "application/cloudevents+json"}
        )
        problem(response, 400, "invalid-event", "POST", EVENTS)


async def check_unread_bodies(app: InProcessService) -> None:
    """Requests whose bodies no route reads still get answers on a kept-alive connection."""
    for _ in range(4):
        with trio.fail_after(10):
            listed = await app.api.request("GET", DEFINITIONS, content=b'{"a": 1}', headers=JSON)
        assert listed.status_code == 200, listed.text
    for _ in range(4):
        with trio.fail_after(10):
            response = await app.api.put(EVENTS, content=b'{"a": 1}', headers=JSON)
        assert response.status_code == 405
        assert response.headers["Allow"] == "OPTIONS, POST"
        assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE


async def check_history_pages(app: InProcessService) -> None:
    started = await app.api.post(INSTANCES, json={"workflowDefinitionId": "steps"})
    instance_id = started.json()["id"]
    done = await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "20s"})
    assert done.json()["status"] == "completed", done.text
    template = f"{INSTANCES}/{{id}}/history"
    everything = (await app.api.get(f"{INSTANCES}/{instance_id}/history")).json()
    assert everything["nextCursor"] is None
    seqs: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        response = await app.api.get(f"{INSTANCES}/{instance_id}/history", params=params)
        page = response.json()
        assert_matches_openapi("GET", template, 200, page)
        assert len(page["items"]) <= 3
        seqs.extend(item["seq"] for item in page["items"])
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seqs == [item["seq"] for item in everything["items"]]
    assert pages == -(-len(seqs) // 3) and len(seqs) > 3
    for params in ({"limit": "0"}, {"limit": "1001"}, {"cursor": "x"}, {"cursor": "-1"}):
        response = await app.api.get(f"{INSTANCES}/{instance_id}/history", params=params)
        problem(response, 400, "invalid-query-parameter", "GET", template)
    response = await app.api.get(f"{INSTANCES}/{uuid.uuid4()}/history")
    problem(response, 404, "instance-not-found", "GET", template)


async def test_a_clients_mistakes_are_4xx_problems(database_url: str) -> None:
    with trio.fail_after(120):
        async with open_service(database_url) as app:
            await register_yaml(app, ECHO)
            await register_yaml(app, STEPS)
            await check_instance_bodies(app)
            await check_url_parameters(app)
            await check_definitions_and_events(app)
            await check_unread_bodies(app)
            await check_history_pages(app)
            started = await app.api.post(
                INSTANCES, json={"workflowDefinitionId": "echo", "input": None}
            )
            assert started.status_code == 201, started.text
            assert started.json()["input"] == {}
            started = await app.api.post(
                INSTANCES, json={"workflowDefinitionId": "echo", "input": {"fine": 1}}
            )
            assert started.status_code == 201, started.text
            done = await app.api.get(f"{INSTANCES}/{started.json()['id']}", params={"wait": "20s"})
            assert done.json()["status"] == "completed"
            assert done.json()["output"] == {"got": {"fine": 1}}
