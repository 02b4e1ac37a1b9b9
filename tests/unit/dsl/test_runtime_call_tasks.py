"""call (http, openapi, functions) and run (subflows, processes, containers)."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.dsl.runtime_support import document, run
from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import build_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    SubflowRequest,
    json_response,
)

SEEN: list[HttpRequest] = []


def api(request: HttpRequest) -> HttpResponse:
    """A scripted API: echoes the request, serves an OpenAPI 3 document, redirects."""
    SEEN.append(request)
    if request.url.endswith("/openapi.json"):
        return json_response(
            200,
            {
                "openapi": "3.0.0",
                "servers": [{"url": "https://api.example.com/v1"}],
                "paths": {
                    "/items/{id}": {
                        "put": {
                            "operationId": "updateItem",
                            "parameters": [
                                {"name": "id", "in": "path"},
                                {"name": "dryRun", "in": "query"},
                            ],
                            "requestBody": {"content": {}},
                        }
                    }
                },
            },
        )
    if request.url.endswith("/moved"):
        return HttpResponse(status=302, headers={"location": "https://api.example.com/v1/new"})
    body = None if request.body is None else json.loads(request.body)
    return json_response(200, {"method": request.method, "url": request.url, "body": body})


async def call(body: str, input: Any = None) -> Any:
    SEEN.clear()
    result, _ = await run(body, input, effects=InMemoryEffects(http=api))
    return result


async def test_http_call_expands_the_uri_template_and_sends_query_headers_body() -> None:
    """{id} comes from the input; query, headers and a JSON body are sent."""
    result = await call(
        """
        do:
          - save:
              call: http
              with:
                method: post
                endpoint: https://api.example.com/v1/items/{id}
                query: {verbose: 'true'}
                headers: {x-trace: abc}
                body:
                  name: ${ .name }
        """,
        {"id": 7, "name": "lamp"},
    )
    assert result.output == {
        "method": "POST",
        "url": "https://api.example.com/v1/items/7?verbose=true",
        "body": {"name": "lamp"},
    }
    assert SEEN[0].headers["x-trace"] == "abc"
    assert SEEN[0].headers["content-type"] == "application/json"
    assert SEEN[0].idempotency_key.endswith("/do/0/save")


async def test_http_output_response_describes_request_and_response() -> None:
    """output: response gives request, statusCode, headers and content."""
    result = await call(
        """
        do:
          - get:
              call: http
              with: {method: get, endpoint: 'https://api.example.com/v1/x', output: response}
        """
    )
    assert result.output["statusCode"] == 200
    assert result.output["request"]["method"] == "GET"
    assert result.output["headers"]["content-type"] == "application/json"
    assert result.output["content"]["url"] == "https://api.example.com/v1/x"


async def test_http_output_raw_is_base64() -> None:
    """output: raw gives the body bytes base64-encoded."""
    result = await call(
        "do:\n  - get:\n      call: http\n      with: {method: get, endpoint: 'https://a.b/x', output: raw}\n"
    )
    assert isinstance(result.output, str)
    assert result.output.startswith("eyJ")


async def test_redirect_status_is_an_error_unless_redirect_is_true() -> None:
    """Without ``redirect`` a 3xx is a communication error with that status."""
    result = await call(
        "do:\n  - get:\n      call: http\n      with: {method: get, endpoint: 'https://a.b/moved'}\n"
    )
    assert result.error is not None
    assert result.error.status == 302
    assert result.error.type == "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
    followed = await call(
        "do:\n  - get:\n      call: http\n      with: {method: get, endpoint: 'https://a.b/moved', redirect: true}\n"
    )
    assert followed.status == "completed"
    assert SEEN[0].follow_redirects is True


async def test_missing_uri_template_value_is_reported() -> None:
    """A placeholder the input lacks faults and names the placeholder."""
    result = await call(
        "do:\n  - get:\n      call: http\n      with: {method: get, endpoint: 'https://a.b/{id}'}\n",
        {"other": 1},
    )
    assert result.error is not None
    assert result.error.detail == (
        "uri template 'https://a.b/{id}' needs 'id' but the task input has no such property; "
        "available: ['other']"
    )


async def test_openapi_call_by_operation_id() -> None:
    """The document is fetched through the effects; path, query and body are placed."""
    result = await call(
        """
        do:
          - update:
              call: openapi
              with:
                document: {endpoint: 'https://api.example.com/openapi.json'}
                operationId: updateItem
                parameters: {id: 3, dryRun: true, name: chair}
        """
    )
    assert result.output == {
        "method": "PUT",
        "url": "https://api.example.com/v1/items/3?dryRun=true",
        "body": {"name": "chair"},
    }


async def test_openapi_unknown_operation_is_a_configuration_error() -> None:
    """An operationId missing from the document faults and names it."""
    result = await call(
        """
        do:
          - nope:
              call: openapi
              with:
                document: {endpoint: 'https://api.example.com/openapi.json'}
                operationId: deleteEverything
        """
    )
    assert result.error is not None
    assert result.error.detail == (
        "operation 'deleteEverything' is not in the OpenAPI document "
        "https://api.example.com/openapi.json"
    )


async def test_function_from_use_functions_gets_the_with_arguments() -> None:
    """A declared function runs as a task whose input is the call's evaluated ``with``."""
    result, _ = await run(
        """
        use:
          functions:
            greet:
              set:
                greeting: ${ "hello " + .name }
        do:
          - hello:
              call: greet
              with:
                name: ${ .user }
        """,
        {"user": "ada"},
    )
    assert result.output == {"greeting": "hello ada"}


async def test_run_workflow_goes_through_the_effects() -> None:
    """run.workflow starts the subflow by namespace/name/version with a stable key."""
    requests: list[SubflowRequest] = []

    def subflows(request: SubflowRequest) -> Any:
        requests.append(request)
        return {"child": request.input}

    result, _ = await run(
        """
        do:
          - child:
              run:
                workflow: {namespace: billing, name: invoice, version: 2.0.0, input: {n: 1}}
        """,
        effects=InMemoryEffects(subflows=subflows),
    )
    assert result.output == {"child": {"n": 1}}
    assert (requests[0].namespace, requests[0].name, requests[0].version) == (
        "billing",
        "invoice",
        "2.0.0",
    )
    assert requests[0].key.endswith("/do/0/child")


async def test_shell_is_disabled_by_default() -> None:
    """The in-memory effects refuse processes with a configuration error."""

    workflow = build_workflow(document("do:\n  - sh:\n      run:\n        shell: {command: ls}\n"))
    result = await Interpreter(workflow, ExpressionEngine()).start(InMemoryEffects())
    assert result.error is not None
    assert result.error.detail == (
        "running shell processes is disabled; enable it in the runtime configuration"
    )
