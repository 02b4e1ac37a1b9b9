"""Hypothesis state machine: random crash/exit/stop/message/add steps against OTP's rules.

``Model`` is a small reference implementation of OTP supervisor semantics (restart types,
the three strategies, restart intensity). ``SupervisorMachine`` applies every step both to
the model and to a real supervisor, running in a Trio loop on a helper thread, and after
every step checks that the live tree equals the model: the same children, in the same
order, each running with the same restart count, and the supervisor alive exactly when the
model has not given up. The actor system is leak-checked when each run ends.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from workflow_orchestrator.actors import Actor, ActorContext, ActorNotFound, ActorSystem
from workflow_orchestrator.actors.testing import open_checked_actor_system
from workflow_orchestrator.supervision import (
    ActorSpec,
    Backoff,
    Restart,
    RestartStrategy,
    Supervisor,
    SupervisorSpec,
)

T = TypeVar("T")


@attrs.define
class ModelChild:
    name: str
    restart: Restart
    restarts: int = 0


@attrs.define
class Model:
    """OTP supervisor semantics, with every restart inside the intensity window."""

    strategy: RestartStrategy
    max_restarts: int
    children: list[ModelChild]
    restarts: int = 0
    alive: bool = True

    def index(self, name: str) -> int:
        return [child.name for child in self.children].index(name)

    def exit(self, name: str, *, crashed: bool) -> None:
        child = self.children[self.index(name)]
        if not (
            child.restart is Restart.PERMANENT or (child.restart is Restart.TRANSIENT and crashed)
        ):
            self.children.remove(child)
            return
        self.restarts += 1
        if self.restarts > self.max_restarts:
            self.alive = False
            self.children = []
            return
        if self.strategy is RestartStrategy.ONE_FOR_ONE:
            affected = [child]
        elif self.strategy is RestartStrategy.ONE_FOR_ALL:
            affected = list(self.children)
        else:
            affected = self.children[self.index(name) :]
        for other in affected:
            if other is not child and other.restart is Restart.TEMPORARY:
                self.children.remove(other)
            else:
                other.restarts += 1

    def stop(self, name: str) -> None:
        del self.children[self.index(name)]


class Worker(Actor[str]):
    async def receive(self, ctx: ActorContext[str], message: str) -> str:
        if message == "crash":
            raise RuntimeError("crash requested")
        if message == "exit":
            ctx.stop()
        return ctx.name


def worker(name: str, restart: Restart) -> ActorSpec[str]:
    return ActorSpec(name=name, factory=Worker, restart=restart)


class TrioThread:
    """A leak-checked actor system in a Trio loop on a helper thread, driven from sync code."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._closing = trio.Event()
        async with open_checked_actor_system() as system:
            self.system: ActorSystem = system
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._closing.wait()

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in the loop, then let every task settle; return its result."""

        async def step() -> T:
            result = await fn()
            await trio.testing.wait_all_tasks_blocked()
            return result

        return trio.from_thread.run(step, trio_token=self._token)

    def close(self) -> None:
        trio.from_thread.run_sync(self._closing.set, trio_token=self._token)
        self._thread.join(timeout=30)
        if self._error is not None:
            raise self._error


restarts = st.sampled_from(list(Restart))


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.trio: TrioThread | None = None
        self.names = (f"c{i}" for i in range(10_000))

    @initialize(
        strategy=st.sampled_from(list(RestartStrategy)),
        max_restarts=st.integers(min_value=0, max_value=6),
        initial=st.lists(restarts, min_size=1, max_size=4),
    )
    def start(self, strategy: RestartStrategy, max_restarts: int, initial: list[Restart]) -> None:
        self.trio = TrioThread()
        self.start_supervisor(strategy, max_restarts, initial)

    @precondition(lambda self: self.trio is not None and not self.model.alive)
    @rule(initial=st.lists(restarts, min_size=1, max_size=4))
    def revive(self, initial: list[Restart]) -> None:
        """After the supervisor gave up, start a fresh one under the same name."""
        self.start_supervisor(self.model.strategy, self.model.max_restarts, initial)

    def start_supervisor(
        self, strategy: RestartStrategy, max_restarts: int, initial: list[Restart]
    ) -> None:
        assert self.trio is not None
        self.model = Model(
            strategy=strategy,
            max_restarts=max_restarts,
            children=[ModelChild(name=next(self.names), restart=r) for r in initial],
        )
        spec = SupervisorSpec(
            name="sup",
            strategy=strategy,
            max_restarts=max_restarts,
            within_seconds=1e9,
            backoff=Backoff.none(),
            restart=Restart.TEMPORARY,  # when it gives up the guardian just removes it
            children=[worker(child.name, child.restart) for child in self.model.children],
        )
        system = self.trio.system
        self.supervisor: Supervisor = self.trio.call(lambda: system.start_child(spec))

    def alive(self) -> bool:
        return self.trio is not None and self.model.alive

    @precondition(alive)
    @rule(restart=restarts)
    def add(self, restart: Restart) -> None:
        assert self.trio is not None
        child = ModelChild(name=next(self.names), restart=restart)
        self.trio.call(lambda: self.supervisor.start_child(worker(child.name, child.restart)))
        self.model.children.append(child)

    @precondition(lambda self: self.alive() and self.model.children)
    @rule(op=st.sampled_from(["crash", "exit", "stop", "ask"]), data=st.data())
    def act(self, op: str, data: Any) -> None:
        assert self.trio is not None
        name = data.draw(st.sampled_from([c.name for c in self.model.children]), label="child")
        ref = self.trio.system.lookup(f"/user/sup/{name}")

        async def apply() -> Any:
            if op in ("crash", "exit"):
                ref.tell_nowait(op)
                return None
            if op == "stop":
                return await ref.stop()
            return await ref.ask("hello")

        reply = self.trio.call(apply)
        if op in ("crash", "exit"):
            self.model.exit(name, crashed=op == "crash")
        elif op == "stop":
            self.model.stop(name)
        else:
            assert reply == name

    @invariant()
    def tree_matches_model(self) -> None:
        if self.trio is None:
            return
        system = self.trio.system
        if not self.model.alive:
            try:
                system.lookup_supervisor("/user/sup")
            except ActorNotFound:
                return
            raise AssertionError("the model gave up but the supervisor is still there")
        tree = self.trio.call(lambda: _snapshot(system))
        assert tree.state == "running"
        actual = [(child.name, child.state, child.restart_count) for child in tree.children]
        expected = [(child.name, "running", child.restarts) for child in self.model.children]
        assert actual == expected

    def teardown(self) -> None:
        if self.trio is not None:
            self.trio.close()  # raises if the system leaked tasks or mailboxes


async def _snapshot(system: ActorSystem) -> Any:
    await trio.lowlevel.checkpoint()
    return system.statistics("/user/sup")


def test_supervisor_matches_otp_model() -> None:
    """After every random step the supervised tree matches the OTP reference model."""
    run_state_machine_as_test(
        SupervisorMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
