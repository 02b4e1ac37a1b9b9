"""Step definitions for the CTK's feature files and our own, and the scenario runner.

Given steps collect the definition, input, scripted events, HTTP answers and secrets into a
`World`; the When step runs the workflow; Then steps assert on the result, the effect log and
the virtual clock. Unknown steps fail with their text so a new CTK step is noticed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

import attrs
import trio
import yaml

from tests.conformance.gherkin import Scenario, Step
from workflow_orchestrator.adapters import (
    LocalProcesses,
    open_expression_engine,
    open_local_processes,
)
from workflow_orchestrator.adapters.containers import container_runtime
from workflow_orchestrator.config import ContainerSettings
from workflow_orchestrator.dsl.errors import Problem, WorkflowError, canonical_error_type
from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    CloudEvent,
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    ServiceAdapters,
    ServiceCall,
    ServiceCaller,
    SubflowRequest,
    WorkflowResult,
)
from workflow_orchestrator.dsl.runtime._memory import DEFAULT_START
from workflow_orchestrator.dsl.validation import ValidationOptions, load_document

HttpHandler = Callable[[HttpRequest], Any]
Setup = Callable[["World", AsyncExitStack], Awaitable[None]]

#: Features whose effects are real processes (containers): they run on the real clock, with
#: the ``podman`` fixture, and their timings and effects cannot be replayed exactly.
REAL_TIME_FEATURES = frozenset({"containers"})


@attrs.define(eq=False)
class _Replay:
    """A subscription's messages: each at its offset (seconds) after the subscription
    opened, in order; then nothing more."""

    script: list[tuple[float, Any]]
    opened: float
    index: int = 0

    def __aiter__(self) -> _Replay:
        return self

    async def __anext__(self) -> Any:
        if self.index >= len(self.script):
            await trio.sleep_forever()
        offset, message = self.script[self.index]
        await trio.sleep_until(self.opened + offset)
        self.index += 1
        return message


@attrs.define(kw_only=True)
class AsyncApiChannels:
    """``call: asyncapi`` in memory: what each channel address delivers to a subscription
    (``scripted``), what was published to it (``published``), subscriptions still open."""

    scripted: dict[str, list[tuple[float, Any]]] = attrs.field(factory=dict)
    published: dict[str, list[Any]] = attrs.field(factory=dict)
    open: int = 0

    async def call(self, request: ServiceCall) -> Any:
        address = str(request.arguments["address"])
        self.published.setdefault(address, []).append(dict(request.arguments["message"]))
        return {"published": 1}

    @asynccontextmanager
    async def consume(self, request: ServiceCall) -> AsyncIterator[AsyncIterator[Any]]:
        script = sorted(self.scripted.get(str(request.arguments["address"]), []), key=_first)
        self.open += 1
        try:
            yield _Replay(script=script, opened=trio.current_time())
        finally:
            self.open -= 1

    def adapters(self) -> ServiceAdapters:
        return ServiceAdapters(
            callers={"asyncapi": self.call}, consumers={"asyncapi": self.consume}
        )


def _first(item: tuple[float, Any]) -> float:
    return item[0]


@attrs.define(kw_only=True)
class World:
    """What a scenario has set up and observed."""

    http: HttpHandler | None = None
    definition: dict[str, Any] | None = None
    input: Any = None
    events: list[tuple[float, CloudEvent]] = attrs.field(factory=list)
    routes: dict[str, list[HttpResponse]] = attrs.field(factory=dict)
    secrets: dict[str, Any] = attrs.field(factory=dict)
    subflows: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    asyncapi: AsyncApiChannels = attrs.field(factory=AsyncApiChannels)
    result: WorkflowResult | None = None
    effects: InMemoryEffects | None = None
    finished_at: datetime | None = None
    # Calls beyond HTTP: the adapter of each kind (call: grpc, run.container...), what the
    # When step opens around the run (``contexts``) or first (``setups``: local servers, the
    # adapters themselves; closed after it), the state their steps keep (``extras``, by name),
    # the validation options of the definition (what the service that runs it would enable),
    # and the podman CLI environment of the container steps (set by the runner).
    services: dict[str, ServiceCaller] = attrs.field(factory=dict)
    contexts: list[Callable[[World], AbstractAsyncContextManager[None]]] = attrs.field(factory=list)
    setups: list[Setup] = attrs.field(factory=list)
    extras: dict[str, Any] = attrs.field(factory=dict)
    validation: ValidationOptions | None = None
    container_environment: Mapping[str, str] | None = None
    # run.shell / run.script through the real local processes (the processes step).
    processes: LocalProcesses | None = None

    def route_handler(self, fallback: HttpHandler | None) -> HttpHandler | None:
        """HTTP answers from the scripted routes first, then ``fallback``."""
        if not self.routes:
            return fallback
        calls: dict[str, int] = {}

        def handle(request: HttpRequest) -> Any:
            key = f"{request.method} {request.url.split('?')[0]}"
            answers = self.routes.get(key)
            if answers is None:
                if fallback is None:
                    return HttpResponse(status=404, body=b"no route")
                return fallback(request)
            count = calls.get(key, 0)
            calls[key] = count + 1
            return answers[min(count, len(answers) - 1)]

        return handle


_STEPS: list[tuple[re.Pattern[str], Callable[[World, re.Match[str], str | None], Any]]] = []


def step(pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a step function for text matching ``pattern`` (full match)."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _STEPS.append((re.compile(pattern + r"\Z"), function))
        return function

    return register


def _doc(doc: str | None) -> Any:
    assert doc is not None, "this step needs a doc string"
    return yaml.safe_load(doc)


def _path(value: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        shown = json.dumps(value, default=str)[:300]
        assert isinstance(value, Mapping), f"output has no property {dotted!r}: {shown}"
        assert part in value, f"output has no property {dotted!r}: {shown}"
        value = value[part]
    return value


def _result(world: World) -> WorkflowResult:
    assert world.result is not None, "the workflow was not executed"
    return world.result


def _started_tasks(world: World) -> list[str]:
    assert world.effects is not None
    return [
        r.data["data"]["task"].rsplit("/", 1)[-1]
        for r in world.effects.log
        if r.kind == "lifecycle" and r.data["type"] == "io.serverlessworkflow.task.started.v1"
    ]


# -- Given ---------------------------------------------------------------------------------


@step(r"a workflow with definition:")
def _definition(world: World, match: re.Match[str], doc: str | None) -> None:
    assert doc is not None, "this step needs a doc string"
    world.definition = load_document(doc)


@step(r"given the workflow input is:|the workflow input is:")
def _input(world: World, match: re.Match[str], doc: str | None) -> None:
    world.input = _doc(doc)


@step(r"the event is published(?: after (?P<delay>[\d.]+) seconds?)?:")
def _event(world: World, match: re.Match[str], doc: str | None) -> None:
    world.events.append((float(match["delay"] or 0), CloudEvent(attributes=_doc(doc))))


@step(r"the endpoint '(?P<method>\w+) (?P<url>\S+)' answers (?P<statuses>[\d, ]+)(?: with:)?")
def _route(world: World, match: re.Match[str], doc: str | None) -> None:
    body = b"" if doc is None else json.dumps(_doc(doc)).encode()
    world.routes[f"{match['method'].upper()} {match['url']}"] = [
        HttpResponse(status=int(s), headers={"content-type": "application/json"}, body=body)
        for s in match["statuses"].replace(" ", "").split(",")
    ]


@step(r"the endpoint '(?P<method>\w+) (?P<url>\S+)' answers (?P<status>\d+) with events:")
def _event_stream(world: World, match: re.Match[str], doc: str | None) -> None:
    """A server-sent event stream: one ``data:`` event per item of the YAML list."""
    items = _doc(doc)
    assert isinstance(items, list), "this step needs a YAML list of event data"
    stream = "".join(f"data: {json.dumps(item)}\n\n" for item in items)
    world.routes[f"{match['method'].upper()} {match['url']}"] = [
        HttpResponse(
            status=int(match["status"]),
            headers={"content-type": "text/event-stream"},
            body=stream.encode(),
        )
    ]


@step(r"the secret '(?P<name>[\w.-]+)' is:")
def _secret(world: World, match: re.Match[str], doc: str | None) -> None:
    world.secrets[match["name"]] = _doc(doc)


@step(r"a subflow with definition:")
def _subflow(world: World, match: re.Match[str], doc: str | None) -> None:
    assert doc is not None, "this step needs a doc string"
    definition = load_document(doc)
    head = definition["document"]
    world.subflows[f"{head['namespace']}/{head['name']}:{head['version']}"] = definition


@step(r"local processes run the shell and script tasks")
def _local_processes(world: World, match: re.Match[str], doc: str | None) -> None:
    """run.shell and run.script through the service's sandboxed local processes, enabled as
    ``workflows.run.shell``/``script`` enable them."""

    @asynccontextmanager
    async def open_processes(world: World) -> AsyncIterator[None]:
        async with open_local_processes() as processes:
            world.processes = processes
            yield

    world.contexts.append(open_processes)
    world.validation = ValidationOptions(allow_shell=True, allow_script=True)


def _cgroup_v1() -> bool:
    """Whether this host mounts cgroup v1 (no unified cgroup2 hierarchy at its root)."""
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


@step(r"podman runs the containers(?: with (?P<settings>.+))?")
def _podman(world: World, match: re.Match[str], doc: str | None) -> None:
    """run.container through podman (``settings``: ContainerSettings fields as a YAML flow
    mapping, e.g. ``{timeout: 5}``)."""
    assert world.container_environment is not None, "the runner did not set up podman"
    given = yaml.safe_load(match["settings"] or "{}")
    if os.geteuid() != 0 and _cgroup_v1():
        # Rootless podman on cgroup v1 cannot apply resource limits and says so on the
        # container's stderr: off for an ordinary user there (they apply as root).
        given = {"memory": 0, "cpus": 0, "pids_limit": 0, **given}
    settings = ContainerSettings(runtime="podman", **given)
    containers = container_runtime(
        settings, max_output=1 << 20, environment=world.container_environment
    )
    world.services["container"] = containers.call


@step(
    r"the AsyncAPI channel '(?P<address>[^']+)' delivers"
    r"(?: (?P<offset>[\d.]+) seconds? after subscribing)?:"
)
def _delivers(world: World, match: re.Match[str], doc: str | None) -> None:
    script = world.asyncapi.scripted.setdefault(match["address"], [])
    script.append((float(match["offset"] or 0), _doc(doc)))


# -- When ----------------------------------------------------------------------------------


async def execute(world: World, engine: ExpressionEngine) -> None:
    """Build the model and run the workflow with in-memory effects."""
    assert world.definition is not None, "no workflow definition given"

    async def run_subflow(request: SubflowRequest) -> Any:
        key = f"{request.namespace}/{request.name}:{request.version}"
        if key not in world.subflows:
            raise AssertionError(f"subflow {key} is not defined in the scenario")
        child = Interpreter(load_workflow(world.subflows[key]), engine)
        result = await child.start(InMemoryEffects(start=effects.now()), request.input)
        if result.error is not None:
            raise WorkflowError(result.error)
        return result.output

    async with AsyncExitStack() as stack:
        for open_context in world.contexts:
            await stack.enter_async_context(open_context(world))
        channels = world.asyncapi.adapters()
        effects = InMemoryEffects(
            start=DEFAULT_START,
            http=world.route_handler(world.http),
            secrets=world.secrets,
            events=world.events,
            subflows=run_subflow,
            processes=world.processes.run_process if world.processes is not None else None,
            services=ServiceAdapters(
                callers={**channels.callers, **world.services}, consumers=channels.consumers
            ),
        )
        world.effects = effects
        # A container runtime given to the scenario enables run.container, as its setting does.
        options = world.validation or ValidationOptions(
            container_runtime="container" in world.services
        )
        world.result = await Interpreter(load_workflow(world.definition, options), engine).start(
            effects, world.input
        )
        world.finished_at = effects.now()


@step(r"the workflow is executed")
def _executed(world: World, match: re.Match[str], doc: str | None) -> None:
    """Marker; `run_scenario` executes the workflow at this point."""


# -- Then ----------------------------------------------------------------------------------


@step(r"the workflow should complete")
def _completes(world: World, match: re.Match[str], doc: str | None) -> None:
    result = _result(world)
    assert result.status == "completed", f"workflow {result.status}: {result.error}"


@step(r"the workflow should complete with output:|the workflow output should be:")
def _completes_with(world: World, match: re.Match[str], doc: str | None) -> None:
    _completes(world, match, None)
    assert _result(world).output == _doc(doc)


@step(r"the workflow should fault")
def _faults(world: World, match: re.Match[str], doc: str | None) -> None:
    result = _result(world)
    assert result.status == "faulted", f"workflow {result.status} with {result.output!r}"


@step(r"the workflow should fault with error:")
def _faults_with(world: World, match: re.Match[str], doc: str | None) -> None:
    _faults(world, match, None)
    error = _result(world).error
    assert error is not None
    actual = error.to_json()
    for name, expected in _doc(doc).items():
        if name == "type":
            assert canonical_error_type(expected) == canonical_error_type(actual["type"])
        else:
            assert actual.get(name) == expected, f"error {name}: {actual.get(name)!r}"


@step(r"the workflow output should have properties (?P<names>.+)")
def _has_properties(world: World, match: re.Match[str], doc: str | None) -> None:
    for name in re.findall(r"'([^']+)'", match["names"]):
        _path(_result(world).output, name)


@step(r"the workflow output should have a '(?P<name>[^']+)' property with value:")
def _property_value(world: World, match: re.Match[str], doc: str | None) -> None:
    assert _path(_result(world).output, match["name"]) == _doc(doc)


@step(r"the workflow output should have a '(?P<name>[^']+)' property containing (?P<n>\d+) items?")
def _property_count(world: World, match: re.Match[str], doc: str | None) -> None:
    assert len(_path(_result(world).output, match["name"])) == int(match["n"])


@step(r"(?P<task>\w+) should run first")
def _runs_first(world: World, match: re.Match[str], doc: str | None) -> None:
    assert _started_tasks(world)[0] == match["task"], _started_tasks(world)


@step(r"(?P<task>\w+) should run last")
def _runs_last(world: World, match: re.Match[str], doc: str | None) -> None:
    assert _started_tasks(world)[-1] == match["task"], _started_tasks(world)


@step(r"(?P<task>\w+) should run after (?P<before>\w+)")
def _runs_after(world: World, match: re.Match[str], doc: str | None) -> None:
    order = _started_tasks(world)
    assert order.index(match["task"]) > order.index(match["before"]), order


@step(r"the workflow should (?:finish|have run for) (?P<seconds>[\d.]+) seconds?")
def _duration(world: World, match: re.Match[str], doc: str | None) -> None:
    assert world.finished_at is not None
    elapsed = (world.finished_at - DEFAULT_START).total_seconds()
    assert elapsed == float(match["seconds"]), f"the workflow ran for {elapsed}s"


@step(r"the endpoint '(?P<method>\w+) (?P<url>\S+)' should have been called at seconds (?P<at>.+)")
def _called_at(world: World, match: re.Match[str], doc: str | None) -> None:
    assert world.effects is not None
    times = [
        (datetime.fromisoformat(r.at.replace("Z", "+00:00")) - DEFAULT_START).total_seconds()
        for r in world.effects.log
        if r.kind == "http"
        and r.data["method"] == match["method"].upper()
        and r.data["url"].split("?")[0] == match["url"]
    ]
    assert times == [float(t) for t in match["at"].split(",")], times


@step(r"the lifecycle events should include in order:")
def _lifecycle(world: World, match: re.Match[str], doc: str | None) -> None:
    assert world.effects is not None
    seen = [
        (
            r.data["type"].removeprefix("io.serverlessworkflow.").removesuffix(".v1"),
            r.data["data"].get("task"),
        )
        for r in world.effects.log
        if r.kind == "lifecycle"
    ]
    position = 0
    for wanted in _doc(doc):
        kind, _, task = str(wanted).partition(" ")
        while position < len(seen) and (
            seen[position][0] != kind or (task and seen[position][1] != task)
        ):
            position += 1
        assert position < len(seen), f"no {wanted!r} in order in {seen}"
        position += 1


@step(r"the workflow should have emitted (?P<n>\d+) events?(?: of type '(?P<type>[^']+)')?")
def _emitted(world: World, match: re.Match[str], doc: str | None) -> None:
    assert world.effects is not None
    emitted = [
        r
        for r in world.effects.log
        if r.kind == "emit" and (match["type"] is None or r.data["type"] == match["type"])
    ]
    assert len(emitted) == int(match["n"]), [r.data for r in emitted]


@step(r"the AsyncAPI channel '(?P<address>[^']+)' should have received:")
def _received(world: World, match: re.Match[str], doc: str | None) -> None:
    assert world.asyncapi.published.get(match["address"], []) == _doc(doc)


@step(r"no AsyncAPI subscription should be open")
def _closed(world: World, match: re.Match[str], doc: str | None) -> None:
    assert world.asyncapi.open == 0


@step(r"the error detail should contain '(?P<text>[^']+)'")
def _detail(world: World, match: re.Match[str], doc: str | None) -> None:
    error = _result(world).error
    assert isinstance(error, Problem)
    assert match["text"] in (error.detail or ""), error


def apply(world: World, item: Step) -> None:
    """Run the step function matching ``item``."""
    for pattern, function in _STEPS:
        found = pattern.match(item.text)
        if found is not None:
            function(world, found, item.doc)
            return
    raise AssertionError(f"no step definition matches {item.keyword} {item.text!r}")


async def warm_up(engine: ExpressionEngine) -> None:
    """Start the engine's sandbox worker before any timer exists.

    Under an autojump clock, real I/O that outlasts the threshold lets virtual time jump to the
    next deadline; spawning the worker is the slowest such I/O, so do it up front.
    """
    await engine.evaluate("${ [range(2)] }", None, {})


def run_scenario(
    scenario: Scenario,
    world: World,
    *,
    clock: trio.abc.Clock | None,
    open_http: Callable[[], AbstractAsyncContextManager[HttpHandler]] | None = None,
) -> World:
    """Apply the scenario's steps, executing the workflow at its When step.

    ``open_http`` opens the HTTP handler for the run (the real client for the CTK).
    """

    async def main() -> None:
        async with AsyncExitStack() as stack:
            if open_http is not None:
                world.http = await stack.enter_async_context(open_http())
            await run_steps()

    async def run_steps() -> None:
        async with open_expression_engine() as engine, AsyncExitStack() as resources:
            await warm_up(engine)
            for item in scenario.steps:
                if item.keyword == "When":
                    apply(world, item)
                    for setup in world.setups:
                        await setup(world, resources)
                    with trio.fail_after(10**7):
                        await execute(world, engine)
                else:
                    apply(world, item)

    trio.run(main, clock=clock)
    return world
