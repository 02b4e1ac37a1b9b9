"""Every official example runs offline to the end state it should reach, with every feature
enabled in validation.

The fast smoke test of the examples (the durable runs, through the service with local servers,
are ``tests/integration/test_official_examples.py``): in-memory effects whose HTTP goes to the
stand-ins' answers (`ExampleHosts.answer`, no sockets), no events, no service adapters, and a
virtual clock that jumps. So the examples that listen keep waiting, the calls that need an
adapter (grpc, mcp, containers, shell, script, subflows) fault with a configuration error
naming what to configure, those whose documents the stand-ins do not serve (the AsyncAPI
documents, the catalog's function) fault with a communication error, and each other example
completes or faults with the error it is written to reach (see `EXPECTED`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trio
import trio.testing

from tests.support.example_hosts import STATIC_TOKEN, ExampleHosts, Received
from tests.support.services import unavailable
from tests.support.spec import SPEC, require_spec
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
)
from workflow_orchestrator.dsl.validation import ValidationOptions

EXAMPLES = SPEC / "examples"
PATHS = sorted(EXAMPLES.glob("*.yaml")) if EXAMPLES.is_dir() else []
#: Validation as a service with every feature configured would do it.
EVERYTHING = ValidationOptions(
    container_runtime=True, allow_shell=True, allow_script=True, allow_mcp_stdio=True
)
ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"
#: One input for every example (each takes what it reads).
INPUT = {
    "petId": 1,
    "id": 1,
    "searchQuery": "luke",
    "token": STATIC_TOKEN,
    "orderType": "physical",
    "customer": {"age": 30},
}
#: The examples started by an event get that event, as ``schedule.on`` gives it.
EVENT_INPUT = [
    {
        "specversion": "1.0",
        "id": "1",
        "source": "/tests",
        "type": "trigger",
        "data": {"patient": {"id": "p", "name": "n", "room": {"number": 1}, "vitals": {"bpm": 1}}},
    }
]
STARTED_BY_EVENT = {"schedule-event-driven", "set", "set-expression"}
SECRETS = {
    "mySecret": {
        "authority": "http://myorg.io",
        "grant": "client_credentials",
        "client": {"id": "orders-app", "secret": "orders-app-secret"},
    }
}
# Adapters the in-memory effects do not have: configuration errors naming the setting.
ADAPTER_KINDS = (
    "call-grpc",
    "call-mcp",
    "run-container",
    "run-return-",
    "run-script",
    "run-shell",
    "run-subflow",
)
# Documents the stand-ins do not serve (404): communication errors.
UNSERVED_DOCUMENTS = ("call-asyncapi-", "call-custom-function-cataloged")
# Everything else completes, except these (status, error type), and the listens: waiting.
EXPECTED: dict[str, tuple[str, str | None]] = {
    "accumulate-room-readings": ("faulted", ERRORS + "timeout"),  # its timeout: 1 hour
    "do-multiple": ("faulted", ERRORS + "validation"),  # buyPet's input has no petId
    "try-catch-then": ("faulted", ERRORS + "validation"),  # the same
    "raise-inline": ("faulted", "https://serverlessworkflow.io/errors/not-implemented"),
    "raise-reusable": ("faulted", "https://serverlessworkflow.io/errors/not-implemented"),
}


def expected(stem: str) -> tuple[str, str | None]:
    if stem.startswith(ADAPTER_KINDS):
        return ("faulted", ERRORS + "configuration")
    if stem.startswith(UNSERVED_DOCUMENTS):
        return ("faulted", ERRORS + "communication")
    if stem in EXPECTED:
        return EXPECTED[stem]
    if stem.startswith("listen-to-"):
        return ("waiting", None)
    return ("completed", None)


def stand_in(hosts: ExampleHosts, request: HttpRequest) -> HttpResponse:
    """The stand-ins' answer to ``request``, with no socket in between."""
    parts = urlsplit(request.url)
    body: Any = None
    if request.body:
        body = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    return hosts.answer(
        Received(
            host=parts.hostname or "",
            method=request.method,
            path=parts.path,
            query=parse_qs(parts.query),
            headers=dict(request.headers),
            body=body,
        )
    )


def test_examples_are_present() -> None:
    """The official examples folder exists (fails in CI, skips elsewhere)."""
    if not PATHS:
        require_spec()
        unavailable(f"the official examples are not at {EXAMPLES}")


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_example_runs_offline(path: Path) -> None:
    """The example reaches its expected end state (or keeps waiting for events)."""
    workflow = load_workflow(path.read_text(encoding="utf-8"), EVERYTHING)
    hosts = ExampleHosts()
    given = EVENT_INPUT if path.stem in STARTED_BY_EVENT else INPUT
    ended: list[tuple[str, str | None]] = []

    async def main() -> None:
        effects = InMemoryEffects(http=lambda r: stand_in(hosts, r), secrets=SECRETS)
        async with open_expression_engine() as engine:
            with trio.move_on_after(10 * 86400):
                result = await Interpreter(workflow, engine).start(effects, given)
                ended.append((result.status, result.error.type if result.error else None))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.1))
    assert (ended or [("waiting", None)])[0] == expected(path.stem)
