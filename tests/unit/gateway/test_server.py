"""Serving an app with hypercorn: readiness, drain on shutdown, bounded grace period."""

from __future__ import annotations

import contextlib
from functools import partial

import httpx
import trio
from quart_trio import QuartTrio

from tests.support.services import free_port
from workflow_orchestrator.gateway import serve_app


def slow_app(release: trio.Event, entered: trio.Event) -> QuartTrio:
    app = QuartTrio("slow")

    @app.get("/slow")
    async def slow() -> str:
        entered.set()
        await release.wait()
        return "finished"

    return app


async def test_in_flight_request_finishes_after_shutdown() -> None:
    """A request that is running when shutdown begins still gets its answer."""
    release, entered, shutdown = trio.Event(), trio.Event(), trio.Event()
    port = free_port()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(
                    serve_app,
                    slow_app(release, entered),
                    name="test",
                    host="127.0.0.1",
                    port=port,
                    shutdown=shutdown,
                    grace_period=10,
                )
            )
            assert binds == [f"http://127.0.0.1:{port}"]
            answers: list[httpx.Response] = []

            async def call() -> None:
                async with httpx.AsyncClient() as client:
                    answers.append(await client.get(f"http://127.0.0.1:{port}/slow"))

            nursery.start_soon(call)
            await entered.wait()
            shutdown.set()
            await trio.sleep(0.2)  # the listener is draining now
            release.set()
    assert [a.text for a in answers] == ["finished"]


async def test_grace_period_bounds_the_drain() -> None:
    """A request that outlives the grace period does not keep the server from stopping."""
    release, entered, shutdown = trio.Event(), trio.Event(), trio.Event()
    port = free_port()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    serve_app,
                    slow_app(release, entered),
                    name="test",
                    host="127.0.0.1",
                    port=port,
                    shutdown=shutdown,
                    grace_period=0.5,
                )
            )

            async def call() -> None:
                # Cut off at the end of the grace period, as intended.
                async with httpx.AsyncClient() as client:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.get(f"http://127.0.0.1:{port}/slow", timeout=20)

            nursery.start_soon(call)
            await entered.wait()
            started = trio.current_time()
            shutdown.set()
        stopped_after = trio.current_time() - started
    assert stopped_after < 5


async def test_idle_keep_alive_connection_does_not_hold_the_stop() -> None:
    """A client that keeps its connection open after its answer (a load balancer, a probe)
    does not make the stop wait for the grace period: with no request in flight it ends."""
    release, entered, shutdown = trio.Event(), trio.Event(), trio.Event()
    port = free_port()
    grace = 60.0
    async with httpx.AsyncClient() as client:
        with trio.move_on_after(grace / 2) as bound:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    partial(
                        serve_app,
                        slow_app(release, entered),
                        name="test",
                        host="127.0.0.1",
                        port=port,
                        shutdown=shutdown,
                        grace_period=grace,
                    )
                )
                release.set()
                answer = await client.get(f"http://127.0.0.1:{port}/slow")
                assert answer.text == "finished"  # and the connection stays open, idle
                shutdown.set()
        assert not bound.cancelled_caught, "the idle connection held the stop"
