"""Steps of ``call-grpc.feature``: a real gRPC server the scenario describes, and the adapter.

``Given a gRPC server serving the proto '<path>':`` (the proto text as doc string) starts, at
the When step, a server of that proto on 127.0.0.1 and writes the proto as ``<path>`` under a
temporary ``workflows.calls.grpc.protoDirectory``; ``grpc://localhost:5011`` (the official
example's host) is sent to the server. Answers are scripted per method; Then steps read what
the server received. The adapter is the real `GrpcCaller`, with an outbound policy allowing
loopback unless the scenario asks for the default policy. These scenarios run on the real
clock (tag ``@real-time``).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import grpc
import yaml

from tests.conformance.steps import World, step
from tests.support.grpc_server import Answer, Failure, GrpcServer, serve_grpc
from workflow_orchestrator.adapters.grpc import GrpcCaller
from workflow_orchestrator.config import GrpcCallSettings, OutboundSettings
from workflow_orchestrator.security import OutboundPolicy

EXAMPLE_HOST = "grpc://localhost:5011"
_LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8", "::1")))


@attrs.define(kw_only=True)
class GrpcScenario:
    """What the gRPC steps of one scenario set up and saw."""

    proto: str = ""
    path: str = "service.proto"
    reflection: bool = False
    answers: dict[str, list[Answer]] = attrs.field(factory=dict)
    settings: dict[str, Any] = attrs.field(factory=dict)
    enabled: bool = True
    policy: OutboundPolicy = _LOOPBACK
    server: GrpcServer | None = None


def _scenario(world: World) -> GrpcScenario:
    state = world.extras.get("grpc")
    if state is None:
        state = world.extras["grpc"] = GrpcScenario()
        world.contexts.append(_open_grpc)
    assert isinstance(state, GrpcScenario)
    return state


@asynccontextmanager
async def _open_grpc(world: World) -> AsyncIterator[None]:
    """The server and the adapter, for the run of the workflow."""
    state = _scenario(world)
    with (
        tempfile.TemporaryDirectory() as folder,
        serve_grpc(
            state.proto, name=Path(state.path).name, reflection_service=state.reflection
        ) as server,
    ):
        (Path(folder) / state.path).parent.mkdir(parents=True, exist_ok=True)
        (Path(folder) / state.path).write_text(state.proto)
        for method, answers in state.answers.items():
            server.answer(method, *answers)
        state.server = server
        settings = GrpcCallSettings(proto_directory=folder, **state.settings)

        def mapped(url: str) -> str:
            if url.startswith(EXAMPLE_HOST):
                return server.target + url[len(EXAMPLE_HOST) :]
            return url

        if state.enabled:
            caller = GrpcCaller(settings=settings, policy=state.policy, mapped=mapped)
            world.services["grpc"] = caller.call
        yield


def _server(world: World) -> GrpcServer:
    server = _scenario(world).server
    assert server is not None, "the workflow was not executed"
    return server


# -- Given ---------------------------------------------------------------------------------


@step(r"a gRPC server serving the proto '(?P<path>[\w./-]+)':")
def _serves(world: World, match: re.Match[str], doc: str | None) -> None:
    assert doc is not None, "this step needs the proto as doc string"
    state = _scenario(world)
    state.proto, state.path = doc, match["path"]


@step(r"the gRPC server offers reflection")
def _offers_reflection(world: World, match: re.Match[str], doc: str | None) -> None:
    _scenario(world).reflection = True


@step(r"the gRPC method '(?P<method>[\w./]+)' answers(?: (?P<codes>[A-Z_, ]+))?(?: with:)?")
def _answers(world: World, match: re.Match[str], doc: str | None) -> None:
    response = yaml.safe_load(doc) if doc is not None else {}
    answers: list[Answer] = []
    for code in (match["codes"] or "OK").replace(" ", "").split(","):
        if code == "OK":
            answers.append(response)
        else:
            answers.append(Failure(grpc.StatusCode[code], f"the server answers {code}"))
    _scenario(world).answers[match["method"]] = answers


@step(r"the gRPC method '(?P<method>[\w./]+)' greets by name")
def _greets(world: World, match: re.Match[str], doc: str | None) -> None:
    def greet(request: dict[str, Any], metadata: dict[str, str], _: object) -> dict[str, Any]:
        return {"message": f"Hello, {request.get('name', '')}"}

    _scenario(world).answers[match["method"]] = [greet]


@step(r"the gRPC calls use server reflection")
def _reflection(world: World, match: re.Match[str], doc: str | None) -> None:
    _scenario(world).settings["descriptor_source"] = "reflection"


@step(r"the gRPC calls go through the default outbound policy")
def _default_policy(world: World, match: re.Match[str], doc: str | None) -> None:
    _scenario(world).policy = OutboundPolicy()


@step(r"gRPC calls are disabled")
def _disabled(world: World, match: re.Match[str], doc: str | None) -> None:
    _scenario(world).enabled = False


# -- Then ----------------------------------------------------------------------------------


@step(r"the gRPC method '(?P<method>[\w./]+)' should have been called (?P<n>\d+) times?")
def _called(world: World, match: re.Match[str], doc: str | None) -> None:
    calls = _server(world).calls(match["method"])
    assert len(calls) == int(match["n"]), calls


@step(r"the gRPC method '(?P<method>[\w./]+)' should have received:")
def _received(world: World, match: re.Match[str], doc: str | None) -> None:
    assert doc is not None
    calls = _server(world).calls(match["method"])
    assert calls, f"{match['method']} was not called"
    assert calls[-1].request == yaml.safe_load(doc)


@step(
    r"the gRPC method '(?P<method>[\w./]+)' should have received metadata '(?P<key>[\w-]+)' "
    r"(?:with value '(?P<value>[^']*)'|ending with '(?P<suffix>[^']*)')"
)
def _metadata(world: World, match: re.Match[str], doc: str | None) -> None:
    calls = _server(world).calls(match["method"])
    assert calls, f"{match['method']} was not called"
    value = calls[-1].metadata.get(match["key"])
    if match["value"] is not None:
        assert value == match["value"], calls[-1].metadata
    else:
        assert value is not None and value.endswith(match["suffix"]), calls[-1].metadata
