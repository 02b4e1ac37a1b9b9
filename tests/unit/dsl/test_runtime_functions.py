"""Functions resolved at run time: cataloged (``name:version@catalog``) and by URI."""

from __future__ import annotations

import json

import pytest

from tests.unit.dsl.runtime_support import document, run
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    RuntimeOptions,
    json_response,
)
from workflow_orchestrator.dsl.runtime._functions import raw_url
from workflow_orchestrator.dsl.validation import validate_definition

GREET = """\
input:
  schema:
    document:
      type: object
      properties:
        name: {type: string}
      required: [name]
output:
  schema:
    document:
      type: object
      required: [greeting]
set:
  greeting: ${ "Hello, " + .name + "!" }
"""

CATALOGED = """
use:
  catalogs:
    mine:
      endpoint: https://catalog.example.com/root/
do:
  - greet:
      call: greet:1.0.0@mine
      with:
        name: ${ .who }
"""

FUNCTION_URL = "https://catalog.example.com/root/functions/greet/1.0.0/function.yaml"


class Catalog:
    """Serves function documents (YAML text) by URL; records the requests; others get 404
    except the echo endpoint."""

    def __init__(self, documents: dict[str, str]) -> None:
        self.documents = documents
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if request.url in self.documents:
            return HttpResponse(
                status=200,
                headers={"content-type": "application/yaml"},
                body=self.documents[request.url].encode(),
            )
        if request.url.startswith("https://api.example.com/"):
            body = None if request.body is None else json.loads(request.body)
            return json_response(200, {"url": request.url, "body": body})
        return HttpResponse(status=404, body=b"no such function")


async def test_a_cataloged_function_is_fetched_validated_and_run_with_its_arguments() -> None:
    """name:version@catalog reads <root>/functions/<name>/<version>/function.yaml; ``with`` is
    its input, checked against its input schema, and its output schema holds."""
    catalog = Catalog({FUNCTION_URL: GREET})
    result, effects = await run(CATALOGED, {"who": "Ada"}, effects=InMemoryEffects(http=catalog))
    assert result.status == "completed", result.error
    assert result.output == {"greeting": "Hello, Ada!"}
    assert [(r.method, r.url) for r in catalog.requests] == [("GET", FUNCTION_URL)]
    started = [
        r.data["data"]["task"]
        for r in effects.log
        if r.kind == "lifecycle" and r.data["type"].endswith("task.started.v1")
    ]
    assert started == ["/do/0/greet", "/do/0/greet/call"]


async def test_arguments_that_break_the_input_schema_are_a_validation_error() -> None:
    """The function's input schema applies to the call's ``with``."""
    catalog = Catalog({FUNCTION_URL: GREET})
    result, _ = await run(CATALOGED, {"who": 42}, effects=InMemoryEffects(http=catalog))
    assert result.error is not None
    assert result.error.type.endswith("/validation")


async def test_the_document_is_fetched_once_per_run() -> None:
    """A function called in a loop is fetched the first time only."""
    catalog = Catalog({FUNCTION_URL: GREET})
    body = """
    use:
      catalogs:
        mine:
          endpoint: {uri: 'https://catalog.example.com/root'}
    do:
      - each:
          for: {in: '${ .names }', each: who}
          do:
            - greet:
                call: greet:1.0.0@mine
                with: {name: '${ $who }'}
    """
    result, _ = await run(body, {"names": ["a", "b", "c"]}, effects=InMemoryEffects(http=catalog))
    assert result.status == "completed", result.error
    assert result.output == {"greeting": "Hello, c!"}
    assert len(catalog.requests) == 1


async def test_a_function_named_by_its_uri_is_read_raw_from_github() -> None:
    """A GitHub page URL is read from raw.githubusercontent.com, as the DSL asks."""
    raw = "https://raw.githubusercontent.com/acme/functions/refs/heads/v2/greet/function.yaml"
    catalog = Catalog({raw: GREET})
    body = """
    do:
      - greet:
          call: https://github.com/acme/functions/blob/v2/greet/function.yaml
          with: {name: Bob}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=catalog))
    assert result.status == "completed", result.error
    assert result.output == {"greeting": "Hello, Bob!"}


@pytest.mark.parametrize(
    ("url", "raw"),
    [
        (
            "https://github.com/serverlessworkflow/catalog/tree/main/functions/log/1.0.0/function.yaml",
            "https://raw.githubusercontent.com/serverlessworkflow/catalog/refs/heads/main/functions/log/1.0.0/function.yaml",
        ),
        (
            "https://github.com/serverlessworkflow/catalog/functions/log/1.0.0/function.yaml",
            "https://raw.githubusercontent.com/serverlessworkflow/catalog/refs/heads/main/functions/log/1.0.0/function.yaml",
        ),
        (
            "https://gitlab.com/acme/tools/-/tree/dev/functions/x/1.0.0/function.yaml",
            "https://gitlab.com/acme/tools/-/raw/dev/functions/x/1.0.0/function.yaml",
        ),
        (
            "https://raw.githubusercontent.com/serverlessworkflow/catalog/main/functions/log/1.0.0/function.yaml",
            "https://raw.githubusercontent.com/serverlessworkflow/catalog/main/functions/log/1.0.0/function.yaml",
        ),
    ],
)
def test_git_hosting_pages_are_read_raw(url: str, raw: str) -> None:
    """tree/blob pages and bare repository paths become raw URLs; others stay as they are."""
    assert raw_url(url) == raw


async def test_the_default_catalog_comes_from_the_runtime_options() -> None:
    """name:version@default uses workflows.defaultCatalog when the definition declares none."""
    catalog = Catalog({FUNCTION_URL: GREET})
    body = """
    do:
      - greet:
          call: greet:1.0.0@default
          with: {name: Eve}
    """
    options = RuntimeOptions(default_catalog="https://catalog.example.com/root")
    result, _ = await run(body, effects=InMemoryEffects(http=catalog), options=options)
    assert result.status == "completed", result.error
    assert result.output == {"greeting": "Hello, Eve!"}


async def test_without_a_default_catalog_the_error_names_the_setting() -> None:
    """No declared and no configured default catalog: a configuration error."""
    body = """
    do:
      - greet:
          call: greet:1.0.0@default
          with: {name: Eve}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=Catalog({})))
    assert result.error is not None
    assert result.error.type.endswith("/configuration")
    assert result.error.detail == (
        "the catalog 'default' is not declared in use.catalogs and this service has no default "
        "catalog; set workflows.defaultCatalog in the configuration, or declare "
        "use.catalogs.default"
    )


async def test_the_catalog_authentication_is_sent_with_the_fetch() -> None:
    """The catalog endpoint's basic policy authorizes the GET of the function document."""
    catalog = Catalog({FUNCTION_URL: GREET})
    body = """
    use:
      catalogs:
        mine:
          endpoint:
            uri: https://catalog.example.com/root
            authentication:
              basic: {username: user, password: '012345'}
    do:
      - greet:
          call: greet:1.0.0@mine
          with: {name: Al}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=catalog))
    assert result.status == "completed", result.error
    assert catalog.requests[0].headers["authorization"] == "Basic dXNlcjowMTIzNDU="


async def test_an_invalid_function_document_names_the_problem_and_the_fix() -> None:
    """The document is validated as a task definition; pointers are the document's own."""
    bad = "run:\n  script:\n    language: python\n    code: print(1)\n    arguments: {a: b}\n"
    result, _ = await run(
        CATALOGED, {"who": "x"}, effects=InMemoryEffects(http=Catalog({FUNCTION_URL: bad}))
    )
    assert result.error is not None
    assert result.error.type.endswith("/configuration")
    detail = result.error.detail or ""
    assert detail.startswith(
        f"the function document {FUNCTION_URL} (called as 'greet:1.0.0@mine') is not a valid task "
        "definition: /run/script/arguments: "
    )
    assert detail.endswith("; fix the document or call another version")


async def test_a_missing_function_document_is_a_communication_error() -> None:
    """A 404 from the catalog faults the call with the status."""
    result, _ = await run(CATALOGED, {"who": "x"}, effects=InMemoryEffects(http=Catalog({})))
    assert result.error is not None
    assert result.error.type.endswith("/communication")
    assert result.error.status == 404


def test_an_undeclared_catalog_is_refused_at_registration() -> None:
    """A catalog reference must name a declared catalog (or the default one)."""
    body = CATALOGED.replace("@mine", "@other")
    problems = validate_definition(document(body))
    assert [(p.pointer, p.rule) for p in problems] == [("/do/0/greet/call", "catalog-reference")]


async def test_a_remote_function_reads_no_secrets() -> None:
    """A fetched function may not read $secrets: its document is refused."""
    reader = "set:\n  stolen: ${ $secrets.token }\n"
    body = """
    use:
      secrets: [token]
      catalogs:
        mine:
          endpoint: https://catalog.example.com/root
    do:
      - greet:
          call: greet:1.0.0@mine
    """
    effects = InMemoryEffects(http=Catalog({FUNCTION_URL: reader}), secrets={"token": "s3cret"})
    result, _ = await run(body, effects=effects)
    assert result.error is not None
    assert result.error.type.endswith("/configuration")
    assert "reads secret 'token', which is not declared in use.secrets" in (
        result.error.detail or ""
    )


async def test_a_remote_function_cannot_see_secrets_through_dynamic_access() -> None:
    """Even an expression the validation cannot read as a secret use gets no $secrets."""
    reader = "set:\n  stolen: ${ $secrets | tostring }\n"
    body = """
    use:
      secrets: [token]
      catalogs:
        mine:
          endpoint: https://catalog.example.com/root
    do:
      - greet:
          call: greet:1.0.0@mine
    """
    effects = InMemoryEffects(http=Catalog({FUNCTION_URL: reader}), secrets={"token": "s3cret"})
    result, _ = await run(body, effects=effects)
    assert result.status == "completed", result.error
    assert result.output == {"stolen": "null"}


async def test_a_remote_function_cannot_borrow_the_workflows_authentication() -> None:
    """A policy by name (or from a secret) in a fetched function is refused at run time."""
    caller = (
        "call: http\nwith:\n  method: get\n"
        "  endpoint: '${ {uri: \"https://api.example.com/x\", authentication: {use: .policy}} }'\n"
    )
    body = """
    use:
      authentications:
        mine: {bearer: {token: t0k}}
      catalogs:
        mine:
          endpoint: https://catalog.example.com/root
    do:
      - greet:
          call: greet:1.0.0@mine
          with: {policy: mine}
    """
    catalog = Catalog({FUNCTION_URL: caller})
    result, _ = await run(body, effects=InMemoryEffects(http=catalog))
    assert result.error is not None
    assert result.error.type.endswith("/authorization")
    assert "may not use the workflow's authentication policies or secrets" in (
        result.error.detail or ""
    )
    assert all("authorization" not in r.headers for r in catalog.requests)


async def test_an_extension_around_a_remote_functions_task_is_the_workflows_own() -> None:
    """The restriction covers the function's tasks, not the workflow's extension around them."""
    catalog = Catalog({FUNCTION_URL: GREET})
    body = """
    use:
      secrets: [token]
      catalogs:
        mine:
          endpoint: https://catalog.example.com/root
      extensions:
        - audit:
            extend: set
            before:
              - note:
                  call: http
                  with:
                    method: post
                    endpoint: https://api.example.com/audit
                    body: {task: '${ $task.name }', key: '${ $secrets.token }'}
    do:
      - greet:
          call: greet:1.0.0@mine
          with: {name: Ann}
    """
    effects = InMemoryEffects(http=catalog, secrets={"token": "k1"})
    result, _ = await run(body, effects=effects)
    assert result.status == "completed", result.error
    assert result.output == {"greeting": "Hello, Ann!"}
    audit = [r for r in catalog.requests if r.url == "https://api.example.com/audit"]
    assert [json.loads(r.body or b"") for r in audit] == [{"task": "greet", "key": "k1"}]
