"""The cap on live instance actors in the running service (``workflows.maxActiveInstances``)."""

from __future__ import annotations

import pytest
import trio

from tests.support.events import INSTANCES, cloud_event, post_event, start, wait_for
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

SHORT_WAIT = """\
document: {dsl: '1.0.3', namespace: demo, name: short-wait, version: '1.0.0'}
do:
  - pause:
      wait: {milliseconds: 300}
  - done:
      set: {done: true}
"""


async def test_fifty_starts_with_five_slots_all_complete(database_url: str) -> None:
    """With maxActiveInstances 5, fifty instances started at once are all accepted, never
    more than five actors are live, and every instance completes."""
    peak = 0
    with trio.fail_after(120):
        async with open_service(database_url, settings={"workflows.maxActiveInstances": 5}) as app:
            runtime = app.service._runtime
            assert runtime is not None
            await register_yaml(app, SHORT_WAIT)
            ids: list[str] = []
            async with trio.open_nursery() as sampling:

                async def sample() -> None:
                    nonlocal peak
                    while True:
                        peak = max(peak, len(runtime.live), runtime.admission.active)
                        await trio.sleep(0.005)

                sampling.start_soon(sample)
                async with trio.open_nursery() as starting:
                    for _ in range(50):

                        async def start_one() -> None:
                            ids.append(await start(app, "short-wait"))

                        starting.start_soon(start_one)
                statuses = []
                for instance_id in ids:
                    done = await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "60s"})
                    statuses.append(done.json()["status"])
                sampling.cancel_scope.cancel()
            slots_peak = runtime.admission.peak_active
    assert len(ids) == 50
    assert statuses == ["completed"] * 50
    assert 1 <= peak <= 5
    assert slots_peak == 5


LISTENER = """\
document: {dsl: '1.0.3', namespace: demo, name: all-ears, version: '1.0.0'}
do:
  - hear:
      listen:
        to:
          one:
            with: {type: demo.wake}
  - done:
      set: {done: true}
"""


async def test_one_event_wakes_more_instances_than_a_page_behind_the_cap(
    database_url: str,
) -> None:
    """One event matching 600 waiting instances (more than the routing page of 500) reaches
    all of them: a page is activated, the rest drained from the database, never more than
    five live at once, and every instance completes."""
    with trio.fail_after(300):
        async with open_service(database_url, settings={"workflows.maxActiveInstances": 5}) as app:
            runtime = app.service._runtime
            assert runtime is not None
            await register_yaml(app, LISTENER)
            ids: list[str] = []

            async def start_some(n: int) -> None:
                for _ in range(n):
                    ids.append(await start(app, "all-ears"))

            async with trio.open_nursery() as starting:
                for _ in range(20):
                    starting.start_soon(start_some, 30)
            for instance_id in ids:
                await wait_for(app, instance_id, "waiting")
            receipt = await post_event(app, cloud_event("demo.wake", {}))
            for instance_id in ids:
                await wait_for(app, instance_id, "completed")
            slots_peak = runtime.admission.peak_active
    assert receipt["deliveredTo"] == 600
    assert slots_peak == 5
