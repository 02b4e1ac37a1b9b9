"""Actor runtime benchmark: spawn rate, idle memory, tell throughput, ask latency, restarts.

Run: ``.venv/bin/python benchmarks/actors.py [--actors 100000]``. Prints figures; asserts
nothing. Targets (2-core machine): 100,000 actors spawned in < 2 s, <= 4 KB RSS per idle
actor, >= 200,000 tells/s, ask p99 < 1 ms at low load.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from typing import Any

import trio
import trio.testing

from workflow_orchestrator.actors import (
    Actor,
    ActorContext,
    ActorRef,
    MailboxFull,
    open_actor_system,
)
from workflow_orchestrator.supervision import ActorSpec, Backoff, SupervisorSpec

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class Counter(Actor[Any]):
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, ctx: ActorContext[Any], message: Any) -> Any:
        self.count += 1
        return message


class Crasher(Actor[Any]):
    started_at = 0.0
    started = trio.Event()

    async def on_start(self, ctx: ActorContext[Any]) -> None:
        Crasher.started_at = time.perf_counter()
        Crasher.started.set()

    async def receive(self, ctx: ActorContext[Any], message: Any) -> Any:
        raise RuntimeError("crash")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def spawn_many(system: Any, count: int) -> list[ActorRef[Any]]:
    supervisor = await system.start_child(SupervisorSpec(name="instances"))
    gc.collect()
    before = rss()
    blocks = sys.getallocatedblocks()
    started = time.perf_counter()
    refs = [
        await supervisor.start_child(ActorSpec(name=str(i), factory=Counter)) for i in range(count)
    ]
    elapsed = time.perf_counter() - started
    gc.collect()
    per_actor = (rss() - before) / count
    print(f"spawn: {count} actors in {elapsed:.2f} s ({count / elapsed:,.0f}/s)")
    live = (sys.getallocatedblocks() - blocks) / count
    print(
        f"idle memory: {per_actor:,.0f} B RSS per actor (incl. spec, ref and name; "
        f"{live:.1f} live allocations each)"
    )
    for ref in refs:
        ref.tell_nowait("wake")
    await trio.testing.wait_all_tasks_blocked()
    gc.collect()
    per_actor = (rss() - before) / count
    live = (sys.getallocatedblocks() - blocks) / count
    print(
        f"idle memory after one message each (all woken at once): {per_actor:,.0f} B RSS "
        f"per actor, {live:.1f} live allocations each (the rest is the allocator's "
        "high-water mark from 100k message loops running at the same time)"
    )
    return refs


async def tell_one(ref: ActorRef[Any], count: int, *, nowait: bool) -> None:
    started = time.perf_counter()
    if nowait:
        for i in range(count):
            try:
                ref.tell_nowait(i)
            except MailboxFull:
                await ref.tell(i)
    else:
        for i in range(count):
            await ref.tell(i)
    await ref.ask("flush")
    elapsed = time.perf_counter() - started
    how = "tell_nowait (tell when full)" if nowait else "await tell"
    print(f"tell through one actor, {how}: {count / elapsed:,.0f} msg/s")


async def tell_spread(refs: list[ActorRef[Any]], count: int, *, nowait: bool) -> None:
    started = time.perf_counter()
    n = len(refs)
    if nowait:
        for i in range(count):
            ref = refs[i % n]
            try:
                ref.tell_nowait(i)
            except MailboxFull:
                await ref.tell(i)
    else:
        for i in range(count):
            await refs[i % n].tell(i)
    for ref in refs:
        await ref.ask("flush")
    elapsed = time.perf_counter() - started
    how = "tell_nowait (tell when full)" if nowait else "await tell"
    print(f"tell over {n} actors, {how}: {count / elapsed:,.0f} msg/s (incl. final asks)")


async def channel_baseline(count: int) -> None:
    """The same producer/consumer pair over a plain trio memory channel, for reference."""
    send, receive = trio.open_memory_channel[int](64)

    async def consume() -> None:
        async with receive:
            async for _ in receive:
                pass

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        async with send:
            for i in range(count):
                await send.send(i)
    elapsed = time.perf_counter() - started
    print(f"baseline, trio memory channel send/receive: {count / elapsed:,.0f} msg/s")


async def ask_latency(ref: ActorRef[Any], count: int) -> None:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        await ref.ask(i)
        samples.append(time.perf_counter() - started)
    p50, p99 = percentile(samples, 0.5) * 1e6, percentile(samples, 0.99) * 1e6
    print(f"ask round trip: p50 {p50:.1f} us, p99 {p99:.1f} us ({count} sequential asks)")


async def restart_latency(system: Any, count: int) -> None:
    supervisor = await system.start_child(
        SupervisorSpec(name="restarts", backoff=Backoff.none(), max_restarts=count + 1)
    )
    ref = await supervisor.start_child(ActorSpec(name="crasher", factory=Crasher))
    samples = []
    for _ in range(count):
        Crasher.started = trio.Event()
        started = time.perf_counter()
        ref.tell_nowait("crash")
        await Crasher.started.wait()
        samples.append(Crasher.started_at - started)
    p50, p99 = percentile(samples, 0.5) * 1e6, percentile(samples, 0.99) * 1e6
    print(f"restart (crash -> new instance started): p50 {p50:.1f} us, p99 {p99:.1f} us")


async def compare_designs(count: int) -> None:
    """What the obvious designs would cost: a resident task per actor, with and without a
    memory channel pair as its mailbox (bare Trio, no actor objects at all)."""

    async def parked(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep_forever()

    async def channel_reader(receive: trio.MemoryReceiveChannel[Any]) -> None:
        async for _ in receive:
            pass

    for design in ("resident task", "resident task + memory channel pair"):
        async with trio.open_nursery() as nursery:
            gc.collect()
            before = rss()
            started = time.perf_counter()
            channels = []
            for _ in range(count):
                if design == "resident task":
                    nursery.start_soon(parked)
                else:
                    send, receive = trio.open_memory_channel[Any](64)
                    channels.append(send)
                    nursery.start_soon(channel_reader, receive)
            await trio.testing.wait_all_tasks_blocked()
            elapsed = time.perf_counter() - started
            gc.collect()
            per_actor = (rss() - before) / count
            print(
                f"alternative design, {design}: {count} in {elapsed:.2f} s, "
                f"{per_actor:,.0f} B RSS each"
            )
            nursery.cancel_scope.cancel()


async def main(actors: int, compare: bool) -> None:
    import logging

    logging.disable(logging.ERROR)  # the crash benchmark would log every crash
    async with open_actor_system(shutdown_timeout=120) as system:
        refs = await spawn_many(system, actors)
        await tell_one(refs[0], 500_000, nowait=True)
        await tell_one(refs[1], 200_000, nowait=False)
        await channel_baseline(200_000)
        await tell_spread(refs[:10_000], 500_000, nowait=True)
        await tell_spread(refs[:10_000], 200_000, nowait=False)
        await ask_latency(refs[2], 20_000)
        await restart_latency(system, 2_000)
        started = time.perf_counter()
    print(f"shutdown of {actors} actors: {time.perf_counter() - started:.2f} s")
    if compare:
        await compare_designs(actors)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=100_000)
    parser.add_argument("--compare", action="store_true", help="also measure resident-task designs")
    arguments = parser.parse_args()
    trio.run(main, arguments.actors, arguments.compare)
