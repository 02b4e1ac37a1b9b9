"""Documents a workflow fetches (schemas, OpenAPI documents) are read within limits."""

from __future__ import annotations

import json

from tests.unit.dsl.runtime_support import run
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    RuntimeOptions,
)

SCHEMA_URI = "https://schemas.example.com/order.yaml"

CHECKED = """
    do:
      - check:
          input:
            schema:
              resource: {endpoint: 'https://schemas.example.com/order.yaml'}
          set: {ok: true}
"""

OPENAPI = """
    do:
      - callIt:
          call: openapi
          with:
            document: {endpoint: 'https://api.example.com/openapi.yaml'}
            operationId: getItem
"""

# 406 bytes of YAML whose aliases would write out to more than a gigabyte.
LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{n}: &{n} [{','.join(['*' + p] * 9)}]"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)


def serving(body: bytes, seen: list[HttpRequest] | None = None) -> InMemoryEffects:
    def http(request: HttpRequest) -> HttpResponse:
        if seen is not None:
            seen.append(request)
        return HttpResponse(status=200, headers={"content-type": "application/yaml"}, body=body)

    return InMemoryEffects(http=http)


async def test_a_billion_laughs_schema_faults_naming_the_limit() -> None:
    """A small schema of nested aliases faults the instance with the limit and its setting."""
    assert len(LAUGHS) < 500
    result, _ = await run(CHECKED, {"id": 1}, effects=serving(LAUGHS.encode()))
    assert result.status == "faulted" and result.error is not None
    assert result.error.type.endswith("/configuration")
    assert result.error.instance == "/do/0/check"
    assert result.error.detail == (
        f"the schema {SCHEMA_URI} expands to more than 10 MiB of JSON (through YAML aliases?), "
        "the limit set by workflows.maxDocumentSize; write the repeated parts out, make it "
        "smaller or raise the setting"
    )


async def test_an_openapi_document_of_aliases_faults_the_same_way() -> None:
    """call: openapi reads its document with the same loader and limit."""
    result, _ = await run(OPENAPI, effects=serving(LAUGHS.encode()))
    assert result.error is not None
    assert result.error.detail is not None
    assert result.error.detail.startswith(
        "the OpenAPI document https://api.example.com/openapi.yaml expands to more than 10 MiB"
    )


async def test_a_body_over_the_limit_is_refused_and_the_cap_is_asked_for() -> None:
    """A body larger than workflows.maxDocumentSize is refused; the request carries the cap."""
    seen: list[HttpRequest] = []
    body = json.dumps({"type": "object", "description": "x" * 5000}).encode()
    options = RuntimeOptions(max_document_size=4096)
    result, _ = await run(CHECKED, {"id": 1}, effects=serving(body, seen), options=options)
    assert result.error is not None
    assert result.error.title == "Document Too Large"
    assert result.error.detail == (
        f"the schema {SCHEMA_URI} is larger than 4,096 bytes, the limit set by "
        "workflows.maxDocumentSize; make it smaller or raise the setting"
    )
    assert [request.max_body_size for request in seen] == [4096]


async def test_a_large_document_is_parsed_off_the_loop_and_used() -> None:
    """A schema over the inline limit (64 KiB) is parsed in a worker thread and validates."""
    schema = {"type": "object", "required": ["id"], "description": "x" * 100_000}
    body = json.dumps(schema).encode()
    ok, _ = await run(CHECKED, {"id": 1}, effects=serving(body))
    refused, _ = await run(CHECKED, {"other": 1}, effects=serving(body))
    assert ok.status == "completed" and ok.output == {"ok": True}
    assert refused.error is not None and refused.error.type.endswith("/validation")


async def test_a_document_that_is_not_text_is_a_configuration_error() -> None:
    """Bytes that are not UTF-8 are one configuration error, not a crash."""
    result, _ = await run(CHECKED, {"id": 1}, effects=serving(b"\xff\xfe\x00"))
    assert result.error is not None
    assert result.error.detail == f"the schema {SCHEMA_URI} is not UTF-8 text (JSON or YAML)"
