"""One bad workflow harms no other (issue 13): the real service under every poison at once.

One run of `workflow-orchestrator serve` (database event source) gets 100 innocent instances
and, at the same time and in random order, every poison definition and request of the issue:
a tight loop, values PostgreSQL cannot store (NUL, NaN, infinity, nesting), a huge state, HTTP
responses with NUL and over 10 MiB, remote schema and OpenAPI documents that expand to over a
gigabyte, a YAML alias bomb, 5,000 expressions, `split("")` of 4 MB, malformed starts and
paths, and events with 100 KB types. Throughout, a poller probes `/health/live` every 200 ms and
a sampler reads the process's memory. Then more tight loops start and SIGTERM must stop
the service within its grace period.

The run happens once (the module fixture); each test below checks one promise of the issue
against what the run recorded, so a failing promise does not hide the others. To see the
other cases while one poison still takes the whole service down, leave it out with
``ISOLATION_LEAVE_OUT=tight-loop,remote-schema-bomb`` (its own test then fails as not started).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from tests.support.document_server import serve_documents
from tests.support.known_settings import configuration_file
from tests.support.poison_catalogue import (
    INNOCENT,
    LOOPING_WAITER,
    TIGHT_LOOP,
    PoisonRequest,
    PoisonWorkflow,
    innocent_definition,
    looping_waiter,
    poison_documents,
    poison_requests,
    poison_workflows,
)
from tests.support.process import RunningService, run_service
from tests.support.service import ALLOW_LOOPBACK
from tests.support.service_watch import ServiceWatch, watch_service
from tests.support.services import create_database, drop_database, url_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INNOCENTS = 100
GRACE_SECONDS = 5
STOP_MARGIN_SECONDS = 3  # the process exiting after the grace period, on a busy 2-core machine
LIVE_BOUND_SECONDS = 1.0
RSS_BOUND = 1536 * 1024**2  # 1.5 GiB
RSS_KILL = 2 * 1024**3  # beyond this the sampler kills the service to protect the machine
OUTCOME_TIMEOUT = 90.0
FROZEN_AFTER = 15.0  # seconds without a /health/live answer: send no more requests for now
GIVE_UP_AFTER = 45.0  # ... and stop waiting for the instances' outcomes
MIN_OBSERVATION = 10.0  # seconds the run is watched at least, however fast it ends
HUGE_TYPE_EVENTS = 20
HUGE_TYPES = "huge-type-events"
METRICS_BOUND = 256 * 1024
METRICS_LINE_BOUND = 4096
TERMINAL = {"completed", "faulted", "cancelled"}

# The settings the suite asks for. Limits small enough for a quick run where the defaults are
# meant for production; names of settings other parts of issue 13 add. Settings this service
# does not know yet are left out of the file (and reported by the first test).
WANTED_SETTINGS: dict[str, Any] = {
    "server.shutdownGracePeriod": f"{GRACE_SECONDS}s",
    "eventProcessing.source": "database",
    # A tight loop runs for some seconds before its limit ends it: long enough to show the
    # service keeps answering meanwhile, and that SIGTERM stops loops that are still running.
    "workflows.limits.tasksPerRun": 30000,
    "workflows.limits.totalTasks": 60000,
    "workflows.limits.loopIterations": 30000,
    "workflows.limits.historyRows": 100000,
    "workflows.limits.commitEvery": 100,
    "workflows.limits.stateSize": "12MB",
    "workflows.maxActiveInstances": 32,
    "definitions.maxExpressions": 1000,
    # The workflows call the document server on loopback.
    "security.outbound.allow": ALLOW_LOOPBACK,
}

POISON_WORKFLOWS = poison_workflows("http://document-server")  # names only; URLs come later
POISON_REQUESTS = poison_requests()
LEFT_OUT = {name for name in os.environ.get("ISOLATION_LEAVE_OUT", "").split(",") if name}


@attrs.frozen
class Answer:
    """What one request got: its status (0: no answer, ``note`` says why), content type and
    the start of the body."""

    what: str
    status: int
    content_type: str = ""
    body: str = ""
    note: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.define(eq=False)
class IsolationRun:
    """Everything the run recorded, for the tests to judge."""

    unknown_settings: list[str]
    watch: ServiceWatch | None = None
    answers: list[Answer] = attrs.Factory(list)
    setup_problems: list[str] = attrs.Factory(list)
    innocent_ids: dict[int, str] = attrs.Factory(dict)
    instances: dict[str, dict[str, Any]] = attrs.Factory(dict)  # final state, by instance id
    poison_starts: dict[str, Answer] = attrs.Factory(dict)
    poison_answers: dict[str, Answer] = attrs.Factory(dict)
    cancel: list[Answer] = attrs.Factory(list)
    event_answers: list[Answer] = attrs.Factory(list)
    metrics_size: tuple[int, int] = (0, 0)  # bytes of /metrics before and after the run
    metrics_longest_line: int = 0
    stop: tuple[int | None, float] = (None, 0.0)  # exit code (None: killed), seconds
    log_tail: str = ""

    def poison_instance(self, name: str) -> dict[str, Any] | None:
        start = self.poison_starts.get(name)
        if start is None or start.status not in (200, 201):
            return None
        return self.instances.get(start.json()["id"])


@attrs.define(eq=False)
class Api:
    """The API of the service under test; records every answer; gives up on requests once the
    service stopped answering (the run then ends quickly and the tests report it)."""

    service: RunningService
    run: IsolationRun
    client: httpx.Client

    def gone(self, patience: float = FROZEN_AFTER) -> str:
        """Why requests are pointless now ("" while the service answers): it exited, or
        /health/live went unanswered for ``patience`` seconds."""
        if self.service.process.poll() is not None:
            return f"the service exited with {self.service.process.returncode}"
        watch = self.run.watch
        if watch is not None and watch.unresponsive_for() > patience:
            return f"/health/live unanswered for {watch.unresponsive_for():.0f}s"
        return ""

    def call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str = "application/json",
        timeout: float = 15.0,
        base: str | None = None,
    ) -> Answer:
        why = self.gone()
        if why:
            return Answer(what, 0, note=f"not sent: {why}")
        headers = {"Content-Type": content_type} if content is not None else {}
        try:
            response = self.client.request(
                method,
                (base or self.service.api + "/api") + path,
                content=content,
                headers=headers,
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            answer = Answer(what, 0, note=f"no answer: {type(exc).__name__} {exc}")
        else:
            answer = Answer(
                what, response.status_code, response.headers.get("content-type", ""), response.text
            )
        self.run.answers.append(attrs.evolve(answer, body=answer.body[:4000]))
        return answer

    def start(self, what: str, definition_id: str, input: Any) -> Answer:
        body = json.dumps({"workflowDefinitionId": definition_id, "input": input}).encode()
        return self.call(what, "POST", "/v1/workflow-instances", content=body)

    def register(self, definition_id: str, text: str) -> None:
        answer = self.call(
            f"register {definition_id}",
            "POST",
            f"/v1/workflow-definitions?id={definition_id}",
            content=text.encode(),
            content_type="application/yaml",
            timeout=60,
        )
        if answer.status != 201:
            self.run.setup_problems.append(
                f"registering {definition_id}: {answer.status} {answer.note}{answer.body[:500]}"
            )

    def instance(self, instance_id: str, wait: str = "") -> dict[str, Any] | None:
        query = f"?wait={wait}" if wait else ""
        answer = self.call(
            "read instance", "GET", f"/v1/workflow-instances/{instance_id}{query}", timeout=30
        )
        return answer.json() if answer.status == 200 else None

    def innocent_instances(self) -> list[dict[str, Any]] | None:
        answer = self.call(
            "list innocent",
            "GET",
            f"/v1/workflow-instances?workflowDefinitionId={INNOCENT}&limit=500",
            timeout=30,
        )
        return answer.json()["items"] if answer.status == 200 else None

    def metrics(self) -> str:
        """The whole /metrics text ("" without an answer)."""
        if self.gone():
            return ""
        try:
            response = self.client.get(self.service.management + "/metrics", timeout=30)
        except httpx.HTTPError:
            return ""
        self.run.answers.append(Answer("metrics", response.status_code))
        return response.text if response.status_code == 200 else ""


def _cancel_looping_waiter(api: Api) -> None:
    """Start the looping waiter, cancel it once it runs, and read its final status."""
    run = api.run
    started = api.start("start looping-waiter", looping_waiter().name, {})
    run.cancel.append(started)
    if started.status != 201:
        return
    instance_id = started.json()["id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not api.gone():
        current = api.instance(instance_id)
        if current is not None and current["status"] in ("running", "waiting"):
            break
        time.sleep(0.2)
    run.cancel.append(
        api.call("cancel looping-waiter", "POST", f"/v1/workflow-instances/{instance_id}/cancel")
    )
    final = api.instance(instance_id, wait="20s")
    if final is not None:
        run.instances[instance_id] = final
    run.cancel.append(Answer("final looping-waiter", 200 if final else 0, body=json.dumps(final)))


def _send_huge_type_events(api: Api) -> None:
    for index in range(HUGE_TYPE_EVENTS):
        event = {
            "specversion": "1.0",
            "id": f"huge-type-{index}",
            "source": "/isolation",
            "type": f"huge.{index}." + "t" * 100_000,
            "data": {"index": index},
        }
        api.run.event_answers.append(
            api.call(
                f"event with a 100 KB type #{index}",
                "POST",
                "/v1/events",
                content=json.dumps(event).encode(),
                content_type="application/cloudevents+json",
            )
        )


def _jobs(api: Api, workflows: list[PoisonWorkflow]) -> list[Callable[[], None]]:
    """Every start and request of the concurrent phase, shuffled (a fixed seed)."""
    run = api.run
    jobs: list[Callable[[], None]] = []

    def innocent(index: int) -> None:
        answer = api.start(f"start innocent {index}", INNOCENT, {"n": index})
        if answer.status == 201:
            run.innocent_ids[index] = answer.json()["id"]
        else:
            run.setup_problems.append(f"starting innocent {index}: {answer}")

    def poison(workflow: PoisonWorkflow) -> None:
        run.poison_starts[workflow.name] = api.start(
            f"start {workflow.name}", workflow.name, workflow.input
        )

    def request(item: PoisonRequest) -> None:
        run.poison_answers[item.name] = api.call(
            item.name,
            item.method,
            item.path,
            content=item.content or None,
            content_type=item.content_type,
            timeout=60,
        )

    jobs += [partial(innocent, index) for index in range(INNOCENTS)]
    jobs += [partial(poison, w) for w in workflows if w.name not in LEFT_OUT]
    jobs += [partial(request, item) for item in POISON_REQUESTS if item.name not in LEFT_OUT]
    if LOOPING_WAITER not in LEFT_OUT:
        jobs.append(partial(_cancel_looping_waiter, api))
    if HUGE_TYPES not in LEFT_OUT:
        jobs.append(partial(_send_huge_type_events, api))
    random.Random(13).shuffle(jobs)
    return jobs


def _wait_for_outcomes(api: Api) -> None:
    """Until every innocent and poison instance is terminal (or the time is up, or the service
    stopped answering), then record their final states."""
    run = api.run
    poison_ids = [
        answer.json()["id"] for answer in run.poison_starts.values() if answer.status == 201
    ]
    started = time.monotonic()
    deadline = started + OUTCOME_TIMEOUT
    while True:
        innocents = api.innocent_instances() or []
        for item in innocents:
            run.instances[item["id"]] = item
        for instance_id in poison_ids:
            if run.instances.get(instance_id, {}).get("status") not in TERMINAL:
                found = api.instance(instance_id)
                if found is not None:
                    run.instances[instance_id] = found
        watched = [*run.innocent_ids.values(), *poison_ids]
        ended = all(run.instances.get(i, {}).get("status") in TERMINAL for i in watched)
        if ended and time.monotonic() - started >= MIN_OBSERVATION:
            return
        if time.monotonic() > deadline or api.gone(patience=GIVE_UP_AFTER):
            return
        time.sleep(1.0)


def _stop_during_a_tight_loop(api: Api, service: RunningService) -> None:
    """Start more tight loops, then SIGTERM; record the exit code and how long it took."""
    if TIGHT_LOOP not in LEFT_OUT:
        for index in range(3):  # a limit may end one quickly; SIGTERM must find some running
            api.start(f"start a late tight loop #{index}", TIGHT_LOOP, {"n": 0})
    time.sleep(0.2)
    if service.process.poll() is not None:
        api.run.stop = (None, 0.0)
        return
    try:
        code, seconds = service.stop(
            signal.SIGTERM, timeout=GRACE_SECONDS + STOP_MARGIN_SECONDS + 5
        )
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait(timeout=30)
        api.run.stop = (None, GRACE_SECONDS + STOP_MARGIN_SECONDS + 5.0)
        return
    api.run.stop = (code, seconds)


def _run(tmp: Path, database_url: str) -> IsolationRun:
    config = tmp / "isolation.yaml"
    run = IsolationRun(unknown_settings=configuration_file(config, WANTED_SETTINGS))
    with (
        serve_documents() as server,
        run_service(
            tmp, args=("--url", database_url, "--config", str(config)), env={"LOG_LEVEL": "INFO"}
        ) as service,
        httpx.Client(limits=httpx.Limits(max_connections=32)) as client,
    ):
        server.documents.update(poison_documents(server.url))
        workflows = poison_workflows(server.url)
        api = Api(service, run, client)
        with watch_service(
            service.process.pid, service.management + "/health/live", kill_above=RSS_KILL
        ) as watch:
            run.watch = watch
            run.metrics_size = (len(api.metrics()), 0)
            api.register(INNOCENT, innocent_definition(server.url + "/echo"))
            for workflow in [*workflows, looping_waiter()]:
                api.register(workflow.name, workflow.definition)
            with ThreadPoolExecutor(max_workers=12) as pool:
                for future in [pool.submit(job) for job in _jobs(api, workflows)]:
                    future.result()
            _wait_for_outcomes(api)
            metrics = api.metrics()
            run.metrics_size = (run.metrics_size[0], len(metrics))
            run.metrics_longest_line = max((len(line) for line in metrics.splitlines()), default=0)
        _stop_during_a_tight_loop(api, service)
        run.log_tail = service.log()[-6000:]
    return run


def _summary(run: IsolationRun) -> str:
    watch = run.watch
    assert watch is not None
    latencies = sorted(p.seconds for p in watch.probes if p.status == 200)
    slowest = latencies[-1] if latencies else float("nan")
    statuses: dict[str, int] = {}
    for item in run.instances.values():
        statuses[item["status"]] = statuses.get(item["status"], 0) + 1
    return (
        f"isolation run: {len(watch.probes)} /health/live probes, slowest answer {slowest:.3f}s, "
        f"{len(watch.slow_probes(LIVE_BOUND_SECONDS))} slow or unanswered; peak RSS "
        f"{watch.peak_rss / 1024**2:.0f} MiB ({watch.peak_rss_with_children / 1024**2:.0f} MiB "
        f"with the sandbox workers); instances {statuses}; /metrics {run.metrics_size[0]} -> "
        f"{run.metrics_size[1]} bytes; stop {run.stop}; settings unknown to this service: "
        f"{run.unknown_settings}"
    )


@pytest.fixture(scope="module")
def isolation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolationRun]:
    """The one run of the service under every poison at once."""
    name = create_database()
    try:
        run = _run(tmp_path_factory.mktemp("isolation"), url_for(name))
        print(_summary(run))
        yield run
    finally:
        drop_database(name)


def _context(run: IsolationRun) -> str:
    return f"\nservice log (tail):\n{run.log_tail}"


def test_the_settings_the_suite_relies_on_exist(isolation: IsolationRun) -> None:
    """Every limit the suite sets is a setting of the service (none was left out)."""
    assert isolation.unknown_settings == [], (
        f"settings unknown to this service, left out of the run: {isolation.unknown_settings}"
    )


def test_every_innocent_instance_completes(isolation: IsolationRun) -> None:
    """All 100 innocent instances complete with their own output, whatever the poison did."""
    assert len(isolation.innocent_ids) == INNOCENTS, isolation.setup_problems[:5]
    problems = []
    for index, instance_id in sorted(isolation.innocent_ids.items()):
        item = isolation.instances.get(instance_id)
        if item is None or item["status"] != "completed":
            status = "unknown" if item is None else item["status"]
            error = None if item is None else item.get("error")
            problems.append(f"{index} {instance_id}: {status} {json.dumps(error)[:300]}")
        elif item["output"].get("n") != index or item["output"].get("echoed") is not True:
            problems.append(f"{index} {instance_id}: output {item['output']}")
    assert not problems, (
        f"{len(problems)} of {INNOCENTS} innocent instances did not complete: {problems[:10]}"
        + _context(isolation)
    )


def test_health_live_answers_within_a_second_throughout(isolation: IsolationRun) -> None:
    """/health/live, probed every 200 ms during the whole run, always answers 200 within 1 s."""
    watch = isolation.watch
    assert watch is not None and len(watch.probes) > 20, "the poller hardly ran"
    slow = watch.slow_probes(LIVE_BOUND_SECONDS)
    first = slow[0].sent_at - watch.probes[0].sent_at if slow else 0.0
    assert not slow, (
        f"{len(slow)} of {len(watch.probes)} probes were slow or unanswered (the first "
        f"{first:.1f}s into the run): "
        + ", ".join(
            f"{p.status} in {p.seconds:.2f}s at {p.sent_at - watch.probes[0].sent_at:.1f}s"
            for p in slow[:10]
        )
    )


def test_the_service_stays_under_1_5_gib(isolation: IsolationRun) -> None:
    """The service process never holds more than 1.5 GiB resident."""
    watch = isolation.watch
    assert watch is not None
    assert not watch.killed_for_memory, (
        f"the sampler killed the service at {watch.peak_rss / 1024**2:.0f} MiB resident"
    )
    assert watch.peak_rss < RSS_BOUND, f"peak RSS {watch.peak_rss / 1024**2:.0f} MiB"


@pytest.mark.parametrize("workflow", POISON_WORKFLOWS, ids=lambda w: w.name)
def test_poison_instance_ends_faulted_naming_its_problem(
    isolation: IsolationRun, workflow: PoisonWorkflow
) -> None:
    """The poison instance ends `faulted` (or its start is refused with a 4xx) and the error
    names its limit or problem; a per-instance limit is a `limit-exceeded` error."""
    assert workflow.name not in LEFT_OUT, "left out by ISOLATION_LEAVE_OUT"
    start = isolation.poison_starts.get(workflow.name)
    assert start is not None and start.status != 0, f"the start got no answer: {start}"
    assert start.status < 500, f"the start answered {start.status}: {start.body[:500]}"
    if 400 <= start.status < 500:
        assert re.search(workflow.expect, start.body), (
            f"the refused start does not name {workflow.expect!r}: {start.body[:1000]}"
        )
        return
    item = isolation.poison_instance(workflow.name)
    assert item is not None, f"the instance was never read back after its start: {start.body[:300]}"
    error = json.dumps(item.get("error"))
    assert item["status"] == "faulted", (
        f"ended {item['status']!r}, not faulted; error {error[:500]}; "
        f"output {json.dumps(item.get('output'))[:300]}"
    )
    assert re.search(workflow.expect, error), (
        f"the error does not name {workflow.expect!r}: {error}"
    )
    if workflow.limit:
        assert str(item["error"].get("type", "")).endswith("limit-exceeded"), error


@pytest.mark.parametrize("request_case", POISON_REQUESTS, ids=lambda r: r.name)
def test_poison_request_gets_a_4xx_problem(
    isolation: IsolationRun, request_case: PoisonRequest
) -> None:
    """A client's mistake is a 4xx problem+json that says what is wrong, never a 500."""
    assert request_case.name not in LEFT_OUT, "left out by ISOLATION_LEAVE_OUT"
    answer = isolation.poison_answers.get(request_case.name)
    assert answer is not None and answer.status != 0, f"no answer: {answer}"
    assert 400 <= answer.status < 500, f"answered {answer.status}: {answer.body[:500]}"
    assert answer.content_type.startswith("application/problem+json"), answer
    if request_case.expect is not None:
        assert re.search(request_case.expect, answer.body), (
            f"the problem does not name {request_case.expect!r}: {answer.body[:1000]}"
        )


def test_cancel_stops_a_looping_instance(isolation: IsolationRun) -> None:
    """Cancelling an instance that loops (waiting 50 ms a turn) answers 200 and ends it
    `cancelled`."""
    assert LOOPING_WAITER not in LEFT_OUT, "left out by ISOLATION_LEAVE_OUT"
    assert len(isolation.cancel) == 3, isolation.cancel
    _started, cancelled, final = isolation.cancel
    assert cancelled.status == 200, cancelled
    assert final.status == 200 and final.json()["status"] == "cancelled", final


def test_metrics_stay_small_after_events_with_huge_types(isolation: IsolationRun) -> None:
    """20 events with 100 KB types are answered without a 5xx and leave /metrics small: event
    types are bucketed and label values capped."""
    assert HUGE_TYPES not in LEFT_OUT, "left out by ISOLATION_LEAVE_OUT"
    assert len(isolation.event_answers) == HUGE_TYPE_EVENTS
    errors = [a for a in isolation.event_answers if a.status == 0 or a.status >= 500]
    assert not errors, errors[:3]
    before, after = isolation.metrics_size
    assert 0 < after < METRICS_BOUND, f"/metrics grew from {before} to {after} bytes"
    assert isolation.metrics_longest_line < METRICS_LINE_BOUND, isolation.metrics_longest_line


def test_nothing_answers_500(isolation: IsolationRun) -> None:
    """No request of the whole run (innocent or poison) got a 5xx."""
    errors = [f"{a.what}: {a.status} {a.body[:300]}" for a in isolation.answers if a.status >= 500]
    assert not errors, f"{len(errors)} answers were 5xx: {errors[:10]}"


def test_sigterm_stops_the_service_within_its_grace_period(isolation: IsolationRun) -> None:
    """With a tight loop running, SIGTERM stops the service (exit 0) within
    server.shutdownGracePeriod and a margin."""
    code, seconds = isolation.stop
    assert code == 0, (
        f"exit code {code} after {seconds:.1f}s (None: killed, or gone before SIGTERM)"
        + _context(isolation)
    )
    assert seconds < GRACE_SECONDS + STOP_MARGIN_SECONDS, f"the stop took {seconds:.1f}s"
    print(f"SIGTERM stopped the service in {seconds:.2f}s (grace period {GRACE_SECONDS}s)")
