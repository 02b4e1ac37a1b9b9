"""The OpenAPI 3.1 document: its structure, the route serving it, and real responses against it.

Structure checks stand in for a full OpenAPI validator (none is installed): every operation has
responses, every ``$ref`` resolves, every schema is valid 2020-12 and compiles, path parameters
match their templates, and every route of the app is documented. The definitions routes are
exercised against the real PostgreSQL and every answer is validated with
``tests.support.openapi.assert_matches_openapi``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import trio

from tests.support.database import open_api_app
from tests.support.openapi import (
    HTTP_METHODS,
    assert_matches_openapi,
    document,
    escape_pointer_token,
    follow_ref,
    path_template_of,
    resolve_pointer,
    schema_validator,
)
from tests.support.service import open_service
from workflow_orchestrator.gateway._access import API_PERMISSIONS, OPEN_API_ENDPOINTS
from workflow_orchestrator.gateway._openapi import openapi_document

DEFINITIONS = "/v1/workflow-definitions"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
STATUS_KEY = re.compile(r"^([1-5][0-9][0-9]|[1-5]XX|default)$")

# Documented routes whose handlers are being built; remove each one as it lands.

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


# ---------------------------------------------------------------------------------------------
# Walking the document


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) for every operation of the document."""
    for path, item in document()["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def walk(node: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every (pointer, value) of the document, depth first."""
    yield pointer, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{pointer}/{escape_pointer_token(str(key))}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{pointer}/{index}")


def schema_pointers() -> list[str]:
    """The pointer of every top-level schema: components, parameters, headers, bodies."""
    found = [f"/components/schemas/{name}" for name in document()["components"]["schemas"]]
    for pointer, node in walk(document()):
        if pointer.startswith("/components/schemas/") or not isinstance(node, dict):
            continue
        if "schema" in node and isinstance(node["schema"], dict) and "$ref" not in node:
            found.append(f"{pointer}/schema")
    return found


def parameters_of(path: str, method: str) -> list[dict[str, Any]]:
    item = document()["paths"][path]
    raw = [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]
    return [follow_ref(p, path)[0] for p in raw]


# ---------------------------------------------------------------------------------------------
# (a) the document is a well-formed OpenAPI 3.1 document


def test_document_header() -> None:
    """The document is OpenAPI 3.1 with JSON Schema 2020-12 and a server at the default /api."""
    doc = document()
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert doc["jsonSchemaDialect"] == DRAFT_2020_12
    assert doc["info"]["title"] and doc["info"]["version"]
    assert [server["url"] for server in doc["servers"]] == ["/api"]
    for path in doc["paths"]:
        assert path.startswith("/") and not path.endswith("/"), path
    assert all(
        isinstance(key, str) for _, node in walk(doc) if isinstance(node, dict) for key in node
    )


def test_every_operation_has_an_id_and_described_responses() -> None:
    """Each operation has a unique operationId, tags, and responses with descriptions."""
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids)), ids
    tags = {tag["name"] for tag in document()["tags"]}
    for method, path, operation in operations():
        name = f"{method} {path}"
        assert operation.get("summary"), name
        assert set(operation["tags"]) <= tags, name
        assert operation["responses"], f"{name} declares no responses"
        for status, response in operation["responses"].items():
            assert STATUS_KEY.match(status), f"{name}: bad response key {status!r}"
            resolved, _ = follow_ref(response, name)
            assert resolved.get("description"), f"{name} {status} has no description"
            for media_type, content in resolved.get("content", {}).items():
                assert "schema" in content, f"{name} {status} {media_type} has no schema"
                if status.startswith(("4", "5")):
                    assert media_type == "application/problem+json", f"{name} {status}"


def test_path_parameters_match_the_templates() -> None:
    """Every {name} of a path is a required path parameter, and every parameter is well formed."""
    for method, path, _ in operations():
        parameters = parameters_of(path, method)
        templated = set(re.findall(r"\{([^}]+)\}", path))
        declared = {p["name"] for p in parameters if p["in"] == "path"}
        assert declared == templated, f"{method} {path}: path parameters {declared}"
        for parameter in parameters:
            assert parameter["in"] in {"path", "query", "header", "cookie"}, parameter
            assert "schema" in parameter and parameter.get("description"), parameter
            if parameter["in"] == "path":
                assert parameter["required"] is True, parameter
        keys = [(p["in"], p["name"]) for p in parameters]
        assert len(keys) == len(set(keys)), f"{method} {path}: duplicate parameters {keys}"


def test_every_ref_resolves() -> None:
    """Every $ref in the document points at something that exists."""
    broken = []
    for pointer, node in walk(document()):
        if isinstance(node, dict) and "$ref" in node:
            try:
                resolve_pointer(node["$ref"])
            except (KeyError, IndexError, ValueError) as exc:
                broken.append(f"{pointer}: {exc}")
    assert broken == []


def test_every_component_is_used() -> None:
    """Every reusable component is referenced somewhere, so none is left over from an edit."""
    refs = {
        node["$ref"]
        for _, node in walk(document())
        if isinstance(node, dict) and isinstance(node.get("$ref"), str)
    }
    components = document()["components"]
    # Security schemes are referenced by name in the security requirements, not by $ref.
    refs |= {
        f"#/components/securitySchemes/{name}"
        for requirement in document().get("security", [])
        for name in requirement
    }
    unused = [
        f"#/components/{kind}/{name}"
        for kind, group in components.items()
        for name in group
        if f"#/components/{kind}/{name}" not in refs
    ]
    assert unused == []


def test_every_schema_is_valid_json_schema_and_compiles() -> None:
    """Every schema is valid under the 2020-12 meta-schema and compiles with its refs."""
    pointers = schema_pointers()
    assert len(pointers) > 20
    for pointer in pointers:
        schema = resolve_pointer(pointer)
        try:
            jsonschema_rs.meta.validate({"$schema": DRAFT_2020_12, **schema})
        except jsonschema_rs.ValidationError as exc:
            pytest.fail(f"#{pointer} is not valid JSON Schema 2020-12: {exc.message}")
        schema_validator(pointer)


def test_examples_match_their_schemas() -> None:
    """Each `examples` entry of a schema is valid under that schema."""
    checked = 0
    for pointer, node in walk(document()):
        if isinstance(node, dict) and "examples" in node and "type" in node:
            validator = jsonschema_rs.Draft202012Validator(
                {key: value for key, value in node.items() if key != "examples"},
                validate_formats=True,
            )
            for example in node["examples"]:
                assert validator.is_valid(example), f"{pointer}: {example!r}"
                checked += 1
    assert checked > 0


# ---------------------------------------------------------------------------------------------
# (b) the helper itself


def test_helper_refuses_an_undocumented_status() -> None:
    """A status the document does not declare for the operation fails, naming what is declared."""
    with pytest.raises(AssertionError) as caught:
        assert_matches_openapi("GET", "/v1/workflow-definitions/{id}", 418, {})
    assert str(caught.value) == (
        "GET /v1/workflow-definitions/{id} answered 418, a status the OpenAPI document does not "
        "declare; documented: ['200', '400', '401', '403', '404', '500']"
    )


def test_helper_names_operation_status_and_schema_error() -> None:
    """A body that breaks the schema fails with the operation, status, location and error."""
    body = {"id": "greeting", "namespace": "demo", "name": "greeting", "version": "1.0.0"}
    with pytest.raises(AssertionError) as caught:
        assert_matches_openapi(
            "GET", "/v1/workflow-definitions/{id}/versions", 200, {"items": [body]}
        )
    message = str(caught.value)
    assert message.startswith(
        "GET /v1/workflow-definitions/{id}/versions 200 (application/json): the body does not "
        "match the schema at #/paths/~1v1~1workflow-definitions~1{id}~1versions/get/responses/200"
        "/content/application~1json/schema:\n"
    )
    assert "at '/items/0' of the body: \"createdAt\" is a required property" in message


def test_helper_checks_formats_media_types_and_paths() -> None:
    """Bad formats, undocumented media types and unknown paths all fail."""
    problem = {"type": "not a uri", "title": "T", "status": 404, "detail": "d", "instance": "/x"}
    with pytest.raises(AssertionError, match=r"at '/type' of the body: .*uri"):
        assert_matches_openapi("GET", "/v1/workflow-definitions/{id}", 404, problem)
    with pytest.raises(AssertionError, match=r"content type 'text/html' is not documented"):
        assert_matches_openapi(
            "GET", "/v1/workflow-definitions/{id}", 404, {}, content_type="text/html"
        )
    with pytest.raises(AssertionError, match=r"no path '/v1/nowhere'"):
        assert_matches_openapi("GET", "/v1/nowhere", 200, {})
    with pytest.raises(
        AssertionError, match=r"no PUT on this path; documented: \['GET', 'DELETE'\]"
    ):
        assert_matches_openapi("PUT", "/v1/workflow-definitions/{id}", 200, {})


def test_helper_accepts_a_documented_instance() -> None:
    """A well-formed instance body passes, so the lead's tests start from a working helper."""
    instance = {
        "id": "0b8e6f2c-3f8e-4b7a-9a51-1f3c2e4d5a6b",
        "workflowDefinitionId": "order_processing",
        "version": "1.0.0",
        "namespace": "examples",
        "name": "order-processing",
        "status": "faulted",
        "businessKey": None,
        "input": {"orderId": "ORD-12345"},
        "output": None,
        "error": {"type": "https://serverlessworkflow.io/spec/1.0.0/errors/runtime", "status": 500},
        "context": {},
        "activeTasks": ["/do/1/chargeCard"],
        "createdAt": "2026-01-02T03:04:05.123456+00:00",
        "updatedAt": "2026-01-02T03:04:05.123456+00:00",
        "startedAt": "2026-01-02T03:04:05.123456+00:00",
        "completedAt": None,
        "parentId": None,
    }
    assert_matches_openapi("GET", "/v1/workflow-instances/{id}", 200, instance)
    page = {"items": [instance], "nextCursor": None, "totalEstimate": 1}
    assert_matches_openapi("GET", "/v1/workflow-instances", 200, page)
    with pytest.raises(AssertionError, match=r"at '/status' of the body: "):
        assert_matches_openapi(
            "POST", "/v1/workflow-instances/{id}/cancel", 200, {**instance, "status": "done"}
        )


# ---------------------------------------------------------------------------------------------
# (c) and (d): the real app against the real PostgreSQL


async def call(
    client: Any,
    method: str,
    template: str,
    path: str,
    status: int,
    *,
    body: str | bytes | None = None,
    content_type: str = "application/yaml",
) -> tuple[Any, Any]:
    """Send a request under /api, check its status and validate its answer against the document."""
    headers = {"Content-Type": content_type} if body is not None else {}
    response = await client.open("/api" + path, method=method, data=body, headers=headers)
    decoded = await response.get_json()
    assert response.status_code == status, (method, path, response.status_code, decoded)
    assert_matches_openapi(method, template, status, decoded, content_type=response.content_type)
    return response, decoded


@pytest.mark.integration
async def test_every_app_route_is_documented(database_url: str) -> None:
    """Each route the running service's API serves is in the document, and nothing more."""
    with trio.fail_after(60):
        async with open_service(database_url) as running:
            app = running.service.api_app
            assert app is not None
            served = {
                (method, path_template_of(rule.rule).removeprefix("/api"))
                for rule in app.url_map.iter_rules()
                for method in rule.methods or ()
                if method not in {"HEAD", "OPTIONS"}
            }
    documented = {(method, re.sub(r"\{[^}]+\}", "{}", path)) for method, path, _ in operations()}
    assert served - documented == set(), "routes the OpenAPI document does not describe"
    assert documented - served == set(), "documented routes the service does not serve"


@pytest.mark.integration
async def test_definition_routes_match_the_document(database_url: str) -> None:
    """Every definitions route's success answers match the schemas the document declares."""
    item = DEFINITIONS + "/{id}"
    with trio.fail_after(60):
        async with open_api_app(database_url) as app:
            client = app.test_client()
            created, _ = await call(client, "POST", DEFINITIONS, DEFINITIONS, 201, body=GREETING)
            await call(client, "POST", DEFINITIONS, DEFINITIONS, 200, body=GREETING)
            newer = GREETING.replace("'1.0.0'", "'1.1.0'")
            await call(client, "POST", DEFINITIONS, DEFINITIONS, 201, body=newer)
            wrapped = json.dumps({"id": "other", "definition": GREETING})
            await call(
                client,
                "POST",
                DEFINITIONS,
                DEFINITIONS,
                201,
                body=wrapped,
                content_type="application/json",
            )
            _, first = await call(client, "GET", DEFINITIONS, DEFINITIONS + "?limit=1", 200)
            _, second = await call(
                client,
                "GET",
                DEFINITIONS,
                f"{DEFINITIONS}?limit=1&cursor={first['nextCursor']}",
                200,
            )
            await call(client, "GET", DEFINITIONS, DEFINITIONS + "?namespace=demo&text=gree", 200)
            await call(client, "GET", item, f"{DEFINITIONS}/greeting", 200)
            await call(client, "GET", item + "/versions", f"{DEFINITIONS}/greeting/versions", 200)
            await call(
                client,
                "GET",
                item + "/versions/{version}",
                f"{DEFINITIONS}/greeting/versions/1.0.0",
                200,
            )
            _, deleted = await call(client, "DELETE", item, f"{DEFINITIONS}/greeting", 200)
            await call(client, "GET", "/openapi.json", "/openapi.json", 200)
    assert created.headers["Location"] == "/api/v1/workflow-definitions/greeting/versions/1.0.0"
    assert isinstance(first["nextCursor"], str) and second["nextCursor"] is None
    assert deleted == {"id": "greeting", "deletedVersions": ["1.0.0", "1.1.0"]}


@pytest.mark.integration
async def test_definition_errors_match_the_document(database_url: str) -> None:
    """Every error status of the definitions routes is a documented problem+json answer."""
    item = DEFINITIONS + "/{id}"
    broken = GREETING + "      then: nowhere\n"
    with trio.fail_after(60):
        async with open_api_app(database_url) as app:
            client = app.test_client()
            await call(client, "POST", DEFINITIONS, DEFINITIONS, 201, body=GREETING)
            conflict = GREETING.replace('"hello "', '"hi "')
            answers = [
                await call(client, "POST", DEFINITIONS, DEFINITIONS, 409, body=conflict),
                await call(
                    client,
                    "POST",
                    DEFINITIONS,
                    DEFINITIONS,
                    400,
                    body="",
                    content_type="application/json",
                ),
                await call(client, "POST", DEFINITIONS, DEFINITIONS, 422, body=broken),
                await call(
                    client, "POST", DEFINITIONS, DEFINITIONS + "?id=no%20spaces", 422, body=GREETING
                ),
                await call(
                    client, "POST", DEFINITIONS, DEFINITIONS, 422, body="document: [unclosed\n"
                ),
                await call(
                    client, "POST", DEFINITIONS, DEFINITIONS, 413, body="x" * (5 * 1024 * 1024)
                ),
                await call(client, "GET", DEFINITIONS, DEFINITIONS + "?limit=0", 400),
                await call(client, "GET", DEFINITIONS, DEFINITIONS + "?cursor=%21%21", 400),
                await call(client, "GET", item, f"{DEFINITIONS}/nope", 404),
                await call(client, "GET", item + "/versions", f"{DEFINITIONS}/nope/versions", 404),
                await call(
                    client,
                    "GET",
                    item + "/versions/{version}",
                    f"{DEFINITIONS}/greeting/versions/9.9.9",
                    404,
                ),
                await call(client, "DELETE", item, f"{DEFINITIONS}/nope", 404),
            ]
    for response, problem in answers:
        assert response.content_type == "application/problem+json"
        assert problem["status"] == response.status_code
    assert [p["parameter"] for _, p in answers[6:8]] == ["limit", "cursor"]
    assert [p["rule"] for p in answers[2][1]["problems"]] == ["then-target"]


# ---------------------------------------------------------------------------------------------
# (d) the served document


@pytest.mark.integration
@pytest.mark.parametrize(
    ("context_path", "url", "server"),
    [
        ("/api", "/api/openapi.json", "/api"),
        ("/wf", "/wf/openapi.json", "/wf"),
        ("/", "/openapi.json", "/"),
    ],
)
async def test_served_document_names_the_context_path(
    database_url: str, context_path: str, url: str, server: str
) -> None:
    """GET {contextPath}/openapi.json serves the document with servers[0].url = contextPath."""
    with trio.fail_after(60):
        async with open_api_app(database_url, context_path) as app:
            client = app.test_client()
            response = await client.get(url)
            served = await response.get_json()
            elsewhere = await client.get(
                "/api/openapi.json" if context_path != "/api" else "/openapi.json"
            )
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert served["servers"][0]["url"] == server
    assert served == openapi_document(context_path)
    assert {**served, "servers": document()["servers"]} == document()
    assert elsewhere.status_code == 404


@pytest.mark.integration
async def test_every_app_route_needs_a_named_permission(database_url: str) -> None:
    """Authentication covers every route: each one the API serves names the permission it
    needs (gateway/_access.py), or is one of the few open ones; a route added without one
    would be for admins only."""
    with trio.fail_after(60):
        async with open_service(database_url) as running:
            app = running.service.api_app
            assert app is not None
            endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(API_PERMISSIONS) - OPEN_API_ENDPOINTS == set()
    assert set(API_PERMISSIONS) - endpoints == set(), "permissions of routes that do not exist"
