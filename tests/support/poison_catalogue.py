"""The poison of issue 13: definitions whose instances must end faulted alone, requests that
must get a 4xx, and the documents a local server hands them (response and document bombs).

Each poison workflow names what its instance's error must say (a regular expression over the
error's JSON, usually the setting to raise), and whether it is one of the per-instance limits
(its error type then ends in ``limit-exceeded``).
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from tests.support.document_server import Document

__all__ = [
    "INNOCENT",
    "LOOPING_WAITER",
    "TIGHT_LOOP",
    "PoisonRequest",
    "PoisonWorkflow",
    "innocent_definition",
    "looping_waiter",
    "poison_documents",
    "poison_requests",
    "poison_workflows",
]

INNOCENT = "innocent"
_HEADER = "document: {{dsl: '1.0.3', namespace: isolation, name: {name}, version: '1.0.0'}}\n"


@attrs.frozen
class PoisonWorkflow:
    """A definition registered before the run; one instance of it is started beside the
    innocent ones and must end ``faulted`` with an error matching ``expect``."""

    name: str
    body: str
    expect: str
    limit: bool = False
    input: dict[str, Any] = attrs.Factory(dict)

    @property
    def definition(self) -> str:
        return _HEADER.format(name=self.name) + self.body


@attrs.frozen
class PoisonRequest:
    """A request that must get a 4xx problem+json; when ``expect`` is set, its body must
    match it too (the limit and the setting to raise)."""

    name: str
    method: str
    path: str  # under the API root, sent as written (percent escapes included)
    content: bytes = b""
    content_type: str = "application/json"
    expect: str | None = None


def innocent_definition(echo_url: str) -> str:
    """A few `set` tasks, a short `wait` and a `call: http` to the local echo route."""
    return (
        _HEADER.format(name=INNOCENT)
        + f"""\
do:
  - prepare:
      set:
        n: ${{ .n }}
        doubled: ${{ .n * 2 }}
  - pause:
      wait:
        milliseconds: 200
  - ask:
      call: http
      with:
        method: post
        endpoint: {echo_url}
        body:
          n: ${{ .n }}
  - finish:
      set:
        n: ${{ .received.n }}
        echoed: true
"""
    )


TIGHT_LOOP = "tight-loop"
LOOPING_WAITER = "looping-waiter"

_LIMITS = r"workflows\.limits\.\w+"
_DOCUMENT_LIMIT = r"workflows\.maxDocumentSize|definitions\.maxExpandedSize"


def _doublings(count: int) -> str:
    return "".join(
        f"  - double{index}:\n      set:\n        s: ${{ .s + .s }}\n" for index in range(count)
    )


def poison_workflows(server: str) -> list[PoisonWorkflow]:
    """Every poison definition of the issue; ``server`` is the document server's root."""
    return [
        PoisonWorkflow(
            TIGHT_LOOP,
            "do:\n  - again:\n      set:\n        n: ${ .n + 1 }\n      then: again\n",
            _LIMITS,
            limit=True,
            input={"n": 0},
        ),
        PoisonWorkflow(
            "nul-value", """do:\n  - poison:\n      set:\n        v: '${ "a\\u0000b" }'\n""", "NUL"
        ),
        PoisonWorkflow(
            "deep-nesting",
            "do:\n  - poison:\n      set:\n        v: ${ reduce range(0; 1200) as $i (0; [.]) }\n",
            r"(?i)deep|depth|nest|recursion",
        ),
        # 1 KiB doubled 13 times is 8 MiB, then three copies of it: 24 MiB of state, over
        # workflows.limits.stateSize (12 MiB here) while no single expression passes 10 MiB.
        PoisonWorkflow(
            "huge-state",
            """do:\n  - seed:\n      set:\n        s: '${ "x" * 1024 }'\n"""
            + _doublings(13)
            + "  - copies:\n      set:\n        s: ${ .s }\n        t: ${ .s }\n"
            "        u: ${ .s }\n",
            r"workflows\.limits\.stateSize",
            limit=True,
        ),
        PoisonWorkflow(
            "response-with-nul",
            f"do:\n  - ask:\n      call: http\n      with:\n        method: get\n"
            f"        endpoint: {server}/nul\n",
            "NUL",
        ),
        # jq itself writes NaN as null and infinities as +-1.797e308, so non-finite numbers
        # come in as data: a JSON response that Python's parser reads as NaN and -Infinity.
        PoisonWorkflow(
            "response-with-nan",
            f"do:\n  - ask:\n      call: http\n      with:\n        method: get\n"
            f"        endpoint: {server}/nan\n",
            r"(?i)\bnan\b|non-finite",
        ),
        PoisonWorkflow(
            "response-with-infinity",
            f"do:\n  - ask:\n      call: http\n      with:\n        method: get\n"
            f"        endpoint: {server}/infinity\n",
            r"(?i)\binf\b|infinity|non-finite",
        ),
        PoisonWorkflow(
            "response-over-10-mib",
            f"do:\n  - ask:\n      call: http\n      with:\n        method: get\n"
            f"        endpoint: {server}/huge\n",
            r"workflows\.maxResponseSize",
        ),
        PoisonWorkflow(
            "remote-schema-bomb",
            f"input:\n  schema:\n    format: json\n    resource:\n"
            f"      endpoint: {server}/schema-bomb.yaml\n"
            "do:\n  - fine:\n      set:\n        ok: true\n",
            _DOCUMENT_LIMIT,
        ),
        PoisonWorkflow(
            "openapi-document-bomb",
            f"do:\n  - ask:\n      call: openapi\n      with:\n        document:\n"
            f"          endpoint: {server}/openapi-bomb.yaml\n        operationId: getThing\n",
            _DOCUMENT_LIMIT,
        ),
        # A 4 MB string in the data, then split("") of it: the "proven cheap" in-process path
        # must not take it (it blocked the loop 2.8 s); its 16 MB result is over every limit.
        PoisonWorkflow(
            "split-4-mb",
            """do:\n  - seed:\n      set:\n        s: '${ "x" * 4000000 }'\n"""
            """  - poison:\n      set:\n        parts: '${ .s | split("") }'\n""",
            r"workflows\.(expressions\.(maxOutputSize|cpuBudget)|limits\.stateSize)",
        ),
    ]


def looping_waiter() -> PoisonWorkflow:
    """A loop that waits 50 ms per turn: cancelled while it runs, it must end `cancelled`."""
    return PoisonWorkflow(
        LOOPING_WAITER,
        "do:\n  - nap:\n      wait:\n        milliseconds: 50\n      then: nap\n",
        "",
    )


def _alias_bomb_definition() -> bytes:
    """108 KB of YAML: one 100 KB string and 2,000 aliases of it, 200 MB once expanded."""
    blob = "x" * 100_000
    aliases = ", ".join(["*blob"] * 2000)
    return (
        _HEADER.format(name="alias-bomb")
        + f"do:\n  - seed:\n      set:\n        blob: &blob {blob}\n"
        f"  - copies:\n      set:\n        all: [{aliases}]\n"
    ).encode()


def _many_expressions_definition(count: int = 5000) -> bytes:
    """About 158 KB: one `set` task with ``count`` expressions."""
    lines = "".join(f"        k{index}: ${{ .a + {index} }}\n" for index in range(count))
    return (
        _HEADER.format(name="many-expressions") + f"do:\n  - all:\n      set:\n{lines}"
    ).encode()


def _start(input_json: str, business_key: str | None = None) -> bytes:
    key = "" if business_key is None else f', "businessKey": {business_key}'
    return f'{{"workflowDefinitionId": "{INNOCENT}", "input": {input_json}{key}}}'.encode()


def poison_requests() -> list[PoisonRequest]:
    """Every request the issue saw answered 500 (or that blocked the loop)."""
    definitions = "/v1/workflow-definitions"
    instances = "/v1/workflow-instances"
    deep = "[" * 100_000 + "]" * 100_000
    event = '{{"specversion": "1.0", "id": "{id}", "source": "/isolation", "type": "poison", "data": {data}}}'
    return [
        PoisonRequest(
            "definition-alias-bomb",
            "POST",
            f"{definitions}?id=alias-bomb",
            _alias_bomb_definition(),
            "application/yaml",
            expect=r"definitions\.maxExpandedSize",
        ),
        PoisonRequest(
            "definition-5000-expressions",
            "POST",
            f"{definitions}?id=many-expressions",
            _many_expressions_definition(),
            "application/yaml",
            expect=r"definitions\.(maxExpressions|validationTimeout)",
        ),
        PoisonRequest(
            "definition-yaml-nan",
            "POST",
            f"{definitions}?id=yaml-nan",
            (
                _HEADER.format(name="yaml-nan") + "do:\n  - s:\n      set:\n        v: .nan\n"
            ).encode(),
            "application/yaml",
        ),
        PoisonRequest(
            "definition-nul-escape",
            "POST",
            f"{definitions}?id=nul-escape",
            (
                _HEADER.format(name="nul-escape") + 'do:\n  - s:\n      set:\n        v: "a\\0b"\n'
            ).encode(),
            "application/yaml",
        ),
        PoisonRequest("start-input-nested-100000-deep", "POST", instances, _start(deep)),
        PoisonRequest("start-input-nan", "POST", instances, _start('{"x": NaN}')),
        PoisonRequest(
            "start-input-negative-infinity", "POST", instances, _start('{"x": -Infinity}')
        ),
        PoisonRequest("start-input-nul", "POST", instances, _start('{"x": "a\\u0000b"}')),
        PoisonRequest(
            "start-business-key-nul", "POST", instances, _start("{}", json.dumps("a\u0000b"))
        ),
        PoisonRequest("instance-path-nul", "GET", f"{instances}/%00"),
        PoisonRequest("instance-history-path-nul", "GET", f"{instances}/%00/history"),
        PoisonRequest("definition-path-nul", "GET", f"{definitions}/a%00b"),
        PoisonRequest("instances-query-business-key-nul", "GET", f"{instances}?businessKey=a%00b"),
        PoisonRequest(
            "instances-query-definition-nul", "GET", f"{instances}?workflowDefinitionId=a%00b"
        ),
        PoisonRequest("definitions-query-text-nul", "GET", f"{definitions}?text=a%00b"),
        PoisonRequest(
            "event-data-nul",
            "POST",
            "/v1/events",
            event.format(id="nul-1", data='{"v": "a\\u0000b"}').encode(),
            "application/cloudevents+json",
        ),
        PoisonRequest(
            "event-data-nan",
            "POST",
            "/v1/events",
            event.format(id="nan-1", data='{"v": NaN}').encode(),
            "application/cloudevents+json",
        ),
    ]


def _billion_laughs(levels: int = 8, fan_out: int = 10) -> str:
    """A few hundred bytes of YAML whose aliases expand to ``fan_out ** levels`` strings
    (10**8 here: over 1 GB of JSON)."""
    lines = ['l0: &l0 ["lollollol"' + ', "lollollol"' * (fan_out - 1) + "]"]
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fan_out) + "]")
    return "\n".join(lines) + "\n"


def poison_documents(server: str) -> dict[str, Document]:
    """What the document server answers for the poison workflows (``server`` is its root)."""
    laughs = _billion_laughs()
    indented = "".join(f"  {line}\n" for line in laughs.splitlines())
    schema_bomb = f"type: object\n$defs:\n{indented}"
    openapi_bomb = (
        "openapi: 3.0.0\ninfo: {title: bomb, version: '1'}\n"
        f"servers: [{{url: '{server}'}}]\n"
        "paths:\n  /echo:\n    get:\n      operationId: getThing\n"
        f"x-bomb:\n{indented}"
    )
    huge = json.dumps({"blob": "x" * (11 * 1024 * 1024)}).encode()
    return {
        "/nul": Document(b'{"v": "a\\u0000b"}'),
        "/nan": Document(b'{"v": NaN}'),
        "/infinity": Document(b'{"v": -Infinity}'),
        "/huge": Document(huge),
        "/schema-bomb.yaml": Document(schema_bomb.encode(), "application/yaml"),
        "/openapi-bomb.yaml": Document(openapi_bomb.encode(), "application/yaml"),
    }
