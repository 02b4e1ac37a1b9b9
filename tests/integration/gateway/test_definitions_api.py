"""The definitions API against the real PostgreSQL, in process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from tests.support.database import open_api_app
from tests.support.service import open_service

pytestmark = pytest.mark.integration

BASE = "/api/v1/workflow-definitions"

GREETING = """\
document:
  dsl: '1.0.3'
  namespace: demo
  name: greeting
  version: '1.0.0'
do:
  - greet:
      set:
        message: ${ "hello " + .name }
"""


@asynccontextmanager
async def api(url: str) -> AsyncIterator[Any]:
    async with open_api_app(url) as app:
        yield app.test_client()


async def post(
    client: Any, body: str | bytes, content_type: str = "application/yaml", **query: str
) -> Any:
    path = BASE + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    return await client.post(path, data=body, headers={"Content-Type": content_type})


async def test_register_read_list_and_delete(database_url: str) -> None:
    """A YAML definition is registered (201), read back, listed, versioned and deleted."""
    with trio.fail_after(60):
        async with api(database_url) as client:
            created = await post(client, GREETING)
            body = await created.get_json()
            again = await post(client, GREETING)
            latest = await client.get(f"{BASE}/greeting")
            version = await client.get(f"{BASE}/greeting/versions/1.0.0")
            newer = await post(client, GREETING.replace("'1.0.0'", "'1.1.0'"))
            versions = await (await client.get(f"{BASE}/greeting/versions")).get_json()
            listing = await (await client.get(BASE)).get_json()
            deleted = await client.delete(f"{BASE}/greeting")
            gone = await client.get(f"{BASE}/greeting")
            gone_body = await gone.get_json()
    assert created.status_code == 201
    assert created.headers["Location"] == f"{BASE}/greeting/versions/1.0.0"
    assert (body["id"], body["namespace"], body["name"], body["version"]) == (
        "greeting",
        "demo",
        "greeting",
        "1.0.0",
    )
    assert body["definition"]["do"][0]["greet"]["set"]["message"] == '${ "hello " + .name }'
    assert again.status_code == 200
    assert latest.status_code == 200 and version.status_code == 200
    assert newer.status_code == 201
    assert [v["version"] for v in versions["items"]] == ["1.0.0", "1.1.0"]
    assert [(i["id"], i["version"]) for i in listing["items"]] == [("greeting", "1.1.0")]
    assert deleted.status_code == 200
    assert await deleted.get_json() == {"id": "greeting", "deletedVersions": ["1.0.0", "1.1.0"]}
    assert gone.status_code == 404
    assert gone.content_type == "application/problem+json"
    assert gone_body["detail"].startswith("definition 'greeting' not found")


async def test_json_wrapper_and_id_parameter(database_url: str) -> None:
    """The id comes from the wrapper, else from ?id=, else from the document's name."""
    import yaml

    document = yaml.safe_load(GREETING)
    with trio.fail_after(60):
        async with api(database_url) as client:
            wrapped = await post(
                client,
                json.dumps({"id": "order_processing", "definition": document}),
                "application/json",
            )
            by_query = await post(client, json.dumps(document), "application/json", id="greet.v2")
            text_wrapped = await post(
                client, json.dumps({"id": "from_text", "definition": GREETING}), "application/json"
            )
    assert wrapped.status_code == 201 and (await wrapped.get_json())["id"] == "order_processing"
    assert by_query.status_code == 201 and (await by_query.get_json())["id"] == "greet.v2"
    assert text_wrapped.status_code == 201 and (await text_wrapped.get_json())["id"] == "from_text"


async def test_same_version_with_other_content_conflicts(database_url: str) -> None:
    """Re-registering a version with different content is a 409 that says what to change."""
    with trio.fail_after(60):
        async with api(database_url) as client:
            await post(client, GREETING)
            conflict = await post(client, GREETING.replace('"hello "', '"hi "'))
            body = await conflict.get_json()
    assert conflict.status_code == 409
    assert body["detail"] == (
        "definition 'greeting' version '1.0.0' is already registered with different content; "
        "register the changed document under a new version (document.version), or under "
        "another id"
    )


async def test_invalid_definition_lists_every_problem(database_url: str) -> None:
    """A definition that breaks the DSL is a 422 listing each problem with its JSON pointer."""
    broken = (
        GREETING.replace("      set:\n", "      set:\n        other: ${ .x | }\n").replace(
            "message: ${", "message: ${"
        )
        + "      then: nowhere\n"
    )
    with trio.fail_after(60):
        async with api(database_url) as client:
            response = await post(client, broken)
            body = await response.get_json()
    assert response.status_code == 422
    assert body["type"].endswith("/invalid-definition")
    pointers = [(p["pointer"], p["rule"]) for p in body["problems"]]
    assert pointers == [
        ("/do/0/greet/set/other", "expression"),
        ("/do/0/greet/then", "then-target"),
    ]


async def test_what_cannot_run_here_is_refused(database_url: str) -> None:
    """Valid DSL this service will not run (a container, without a container runtime) and
    broken structure are 422s."""
    container = GREETING.replace(
        '      set:\n        message: ${ "hello " + .name }\n',
        "      run:\n        container:\n          image: alpine\n",
    )
    misspelt = GREETING.replace("      set:", "      sett:")
    with trio.fail_after(60):
        async with api(database_url) as client:
            refused = await post(client, container)
            refused_body = await refused.get_json()
            broken = await post(client, misspelt)
            broken_body = await broken.get_json()
    assert refused.status_code == 422
    assert [(p["pointer"], p["rule"]) for p in refused_body["problems"]] == [
        ("/do/0/greet/run/container", "container-runtime")
    ]
    assert broken.status_code == 422
    assert broken_body["problems"] == [
        {
            "pointer": "/do/0/greet/sett",
            "message": "unknown key 'sett'; did you mean 'set'?",
            "rule": "unevaluatedProperties",
        }
    ]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ("", 400, "the body is empty; send the workflow definition as YAML or JSON"),
        (
            '{"id": "x", "definition": 5}',
            400,
            "'definition' must be the workflow document (an object) or its YAML/JSON text",
        ),
        (
            '{"id": "x", "definition": {}, "extra": 1}',
            400,
            "a wrapped definition has only 'id' and 'definition'; remove ['extra']",
        ),
    ],
)
async def test_unreadable_bodies(database_url: str, body: str, status: int, detail: str) -> None:
    """Bodies that are not definitions at all get a 400 naming the problem."""
    with trio.fail_after(60):
        async with api(database_url) as client:
            response = await post(client, body, "application/json")
            problem = await response.get_json()
    assert response.status_code == status
    assert problem["detail"] == detail


async def test_bad_id_and_syntax_errors(database_url: str) -> None:
    """An id with forbidden characters and YAML that does not parse are 422 problems."""
    with trio.fail_after(60):
        async with api(database_url) as client:
            bad_id = await post(client, GREETING, id="no spaces")
            bad_yaml = await post(client, "document: [unclosed\n")
            bad_id_body = await bad_id.get_json()
            bad_yaml_body = await bad_yaml.get_json()
    assert bad_id.status_code == 422
    assert bad_id_body["problems"][0]["message"] == (
        "definition id 'no spaces' may contain only letters, digits, '_', '-' and '.' "
        "(at most 200); choose another id"
    )
    assert bad_yaml.status_code == 422
    assert bad_yaml_body["problems"][0]["rule"] == "syntax"


async def test_body_size_limit(database_url: str) -> None:
    """A body over the limit is refused with 413 problem+json."""
    with trio.fail_after(60):
        async with api(database_url) as client:
            response = await post(client, "x" * (5 * 1024 * 1024))
            body = await response.get_json()
    assert response.status_code == 413
    assert body["detail"] == (
        "the request body is larger than the limit of 4,194,304 bytes (server.maxRequestSize); "
        "send less"
    )


async def test_body_size_limit_is_a_setting(database_url: str) -> None:
    """``server.maxRequestSize`` sets the limit of the running service."""
    with trio.fail_after(60):
        async with open_service(database_url, settings={"server.maxRequestSize": "64KB"}) as app:
            response = await app.api.post(
                "/v1/workflow-definitions",
                content="x" * (100 * 1024),
                headers={"Content-Type": "application/yaml"},
            )
    assert response.status_code == 413
    assert "limit of 65,536 bytes (server.maxRequestSize)" in response.json()["detail"]
