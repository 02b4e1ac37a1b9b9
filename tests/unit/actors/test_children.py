"""Non-actor children: services (storage, HTTP gateways) and nested supervisors.

The first tests drive the records (``ServiceChild``, ``SupervisorChild``) directly under a
real running supervisor that does not know them, so their exit reports are ignored and only
the record's own ``start``/``stop``/``terminate`` act; the rest go through the system.
"""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing

from workflow_orchestrator.actors import Actor, ActorSystem, LifecycleState, StopKind, StopReason
from workflow_orchestrator.actors._cell import ActorCell
from workflow_orchestrator.actors._children import ServiceChild, SupervisorChild, new_child
from workflow_orchestrator.supervision import (
    ActorSpec,
    Backoff,
    ChildSpec,
    ChildStartFailed,
    Restart,
    ServiceSpec,
    Supervisor,
    SupervisorSpec,
    SupervisorStopped,
)

SHUTDOWN = StopReason(kind=StopKind.SHUTDOWN)


async def run_counter(
    log: list[str],
    *,
    fail_after_start: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A service: ready at once, runs until cancelled (or fails on request)."""
    log.append("started")
    task_status.started("handle")
    try:
        if fail_after_start is not None:
            await fail_after_start.wait()
            if log.count("started") == 1:
                raise ConnectionError("lost the database")
        await trio.sleep_forever()
    finally:
        log.append("cancelled")


async def host(system: ActorSystem) -> Supervisor:
    """A running supervisor to lend its nursery to records it does not supervise."""
    supervisor: Supervisor = await system.start_child(SupervisorSpec(name="host"))
    return supervisor


async def test_new_child_picks_the_record_kind(system: ActorSystem) -> None:
    """Each spec gets its kind of record; a bare ChildSpec is refused, naming the kinds."""
    parent = await host(system)
    actor = new_child(parent, ActorSpec(name="a", factory=Actor))
    service = new_child(parent, ServiceSpec(name="s", run=run_counter))
    nested = new_child(parent, SupervisorSpec(name="n"))
    assert (type(actor), type(service), type(nested)) == (ActorCell, ServiceChild, SupervisorChild)
    assert [r.kind for r in (actor, service, nested)] == ["actor", "service", "supervisor"]
    assert (service.ref(), service.nested, service.mailbox_figures()) == (None, None, (None, None))
    with pytest.raises(TypeError) as info:
        new_child(parent, ChildSpec(name="bare"))
    assert str(info.value) == (
        "child spec 'bare' is a ChildSpec, which cannot be started; "
        "use an ActorSpec, ServiceSpec or SupervisorSpec"
    )
    for record in (actor, service, nested):
        record.mark_stopped(SHUTDOWN)


async def test_service_record_start_stop_terminate(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """A service record starts its task, terminate leaves it alone, stop cancels it."""
    log: list[str] = []
    record = ServiceChild(
        await host(system), ServiceSpec(name="svc", run=functools.partial(run_counter, log))
    )
    assert await record.start() == "handle"
    assert (record.state, record.generation, record.path) == (
        LifecycleState.RUNNING,
        1,
        "/user/host/svc",
    )
    await record.terminate(SHUTDOWN)
    assert log == ["started"]
    started = trio.current_time()
    await record.stop(SHUTDOWN)
    assert trio.current_time() == started  # not graceful: cancelled at once
    assert (record.state, record.generation, log) == (
        LifecycleState.STOPPING,
        2,
        ["started", "cancelled"],
    )
    await record.stop(SHUTDOWN)  # already ended: nothing to wait for
    record.mark_stopped(SHUTDOWN)
    assert record.leftovers() == []


async def test_graceful_service_record_is_asked_first(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """A graceful service's record sets stop_requested and cancels only at the deadline."""
    log: list[str] = []

    async def stubborn(
        *, stop_requested: trio.Event, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await stop_requested.wait()
        log.append("asked")
        try:
            await trio.sleep_forever()
        finally:
            log.append("cancelled")

    record = ServiceChild(
        await host(system),
        ServiceSpec(name="api", run=stubborn, graceful=True, shutdown_timeout=4),
    )
    await record.start()
    started = trio.current_time()
    await record.stop(SHUTDOWN)
    assert trio.current_time() - started == pytest.approx(4)
    assert log == ["asked", "cancelled"]
    record.mark_stopped(SHUTDOWN)


async def test_supervisor_record_runs_a_fresh_supervisor_each_start(
    system: ActorSystem,
) -> None:
    """A nested-supervisor record starts a running Supervisor, stops it with its children,
    and a new start makes a new one."""
    log: list[str] = []
    spec = SupervisorSpec(
        name="nested",
        children=[ServiceSpec(name="svc", run=functools.partial(run_counter, log))],
    )
    record = SupervisorChild(await host(system), spec)
    first = await record.start()
    assert isinstance(first, Supervisor)
    assert record.nested is first
    assert (first.path, first.state) == ("/user/host/nested", LifecycleState.RUNNING)
    assert [child.name for child in first.child_records()] == ["svc"]
    await record.stop(SHUTDOWN)
    assert first.state is LifecycleState.STOPPED
    assert log == ["started", "cancelled"]
    await record.terminate(SHUTDOWN)
    second = await record.start()
    assert second is not first
    assert record.nested is second
    await record.stop(SHUTDOWN)
    record.mark_stopped(SHUTDOWN)


async def test_service_is_started_with_task_status(system: ActorSystem) -> None:
    """start_child returns the value the service passed to task_status.started()."""
    log: list[str] = []
    handle = await system.start_child(
        ServiceSpec(name="storage", run=functools.partial(run_counter, log))
    )
    assert handle == "handle"
    assert system.statistics("/user/storage").kind == "service"
    assert system.statistics("/user/storage").state == "running"


async def test_failing_service_is_restarted(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """A service that raises after readiness is restarted by its supervisor."""
    log: list[str] = []
    fail = trio.Event()
    await system.start_child(
        ServiceSpec(name="storage", run=functools.partial(run_counter, log, fail_after_start=fail))
    )
    fail.set()
    await trio.sleep(1)
    assert log == ["started", "cancelled", "started"]
    snapshot = system.statistics("/user/storage")
    assert snapshot.restart_count == 1
    assert snapshot.last_failure is not None
    assert snapshot.last_failure.type == "ConnectionError"


async def test_service_failing_before_ready_fails_start(system: ActorSystem) -> None:
    """An exception before task_status.started() raises ChildStartFailed from start_child."""

    async def broken(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise OSError("port 8081 in use")

    with pytest.raises(ChildStartFailed) as info:
        await system.start_child(ServiceSpec(name="gateway", run=broken))
    assert str(info.value) == (
        "child '/user/gateway' failed to start: OSError: port 8081 in use; fix its start-up "
        "(on_start, or the service before task_status.started())"
    )


async def test_graceful_service_drains_before_cancel(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """A graceful service is asked to stop and gets shutdown_timeout before cancellation."""
    log: list[str] = []

    async def serve(
        *, stop_requested: trio.Event, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await stop_requested.wait()
        log.append("draining")
        await trio.sleep(2)  # finish in-flight requests
        log.append("drained")

    await system.start_child(ServiceSpec(name="api", run=serve, graceful=True, shutdown_timeout=5))
    start = trio.current_time()
    await system.stop("/user/api")
    assert trio.current_time() - start == pytest.approx(2)
    assert log == ["draining", "drained"]


async def test_non_graceful_service_is_cancelled_at_once(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """Without graceful, stopping a service cancels it immediately."""
    log: list[str] = []
    await system.start_child(
        ServiceSpec(name="relay", run=functools.partial(run_counter, log), shutdown_timeout=5)
    )
    start = trio.current_time()
    await system.stop("/user/relay")
    assert trio.current_time() - start == 0
    assert log == ["started", "cancelled"]


async def test_service_returning_is_a_normal_exit(system: ActorSystem) -> None:
    """A transient service that returns is removed; watchers see a normal stop."""

    async def one_shot(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.lowlevel.checkpoint()

    await system.start_child(
        ServiceSpec(name="migrations", run=one_shot, restart=Restart.TRANSIENT)
    )
    await trio.testing.wait_all_tasks_blocked()
    assert system.statistics(depth=1).child_count == 0


async def test_composition_root_tree(system: ActorSystem) -> None:
    """A service tree like the real one shows up in statistics with kinds and strategies."""
    log: list[str] = []
    services = SupervisorSpec(
        name="services",
        backoff=Backoff.none(),
        children=[
            ServiceSpec(name="storage", run=functools.partial(run_counter, log)),
            SupervisorSpec(name="instances"),
            ServiceSpec(name="management-gateway", run=functools.partial(run_counter, log)),
        ],
    )
    nested = await system.start_child(services)
    assert isinstance(nested, Supervisor)
    tree = system.statistics()
    [services_node] = tree.children
    assert [(c.name, c.kind) for c in services_node.children] == [
        ("storage", "service"),
        ("instances", "supervisor"),
        ("management-gateway", "service"),
    ]
    assert services_node.strategy == "one_for_one"


async def test_start_child_on_stopped_supervisor(system: ActorSystem) -> None:
    """Starting a child on a supervisor that stopped raises SupervisorStopped."""
    sup = await system.start_child(SupervisorSpec(name="gone"))
    await system.stop("/user/gone")
    with pytest.raises(SupervisorStopped) as info:
        await sup.start_child(SupervisorSpec(name="x"))
    assert str(info.value) == (
        "supervisor '/user/gone' is not running and cannot start children; "
        "start children while the actor system is open"
    )


async def test_stopped_supervisor_tells_watchers_normal(system: ActorSystem) -> None:
    """Stopping a nested supervisor is a normal stop for those watching it."""
    await system.start_child(SupervisorSpec(name="sub"))
    record = system.guardian.child("sub")
    assert record is not None
    await system.stop("/user/sub")
    assert record.stop_reason is not None
    assert record.stop_reason.kind is StopKind.NORMAL
