"""Durable timers against the real PostgreSQL: written with the parking snapshot, consumed by
the wake-up, fired on time across restarts, removed by cancellation, unshifted by suspension."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import trio

from tests.support.events import INSTANCES, start, wait_for
from tests.support.service import open_service, register_yaml
from tests.support.services import psql

pytestmark = pytest.mark.integration

SLEEPER = """\
document: {dsl: '1.0.3', namespace: timers, name: sleeper, version: '1.0.0'}
do:
  - nap:
      wait: {seconds: 4}
  - done:
      set: {woke: true}
"""

GUARDED_LISTEN = """\
document: {dsl: '1.0.3', namespace: timers, name: guarded, version: '1.0.0'}
do:
  - attempt:
      try:
        - waitForIt:
            listen:
              to:
                one:
                  with: {type: never.happens}
            timeout:
              after: {seconds: 3}
      catch:
        errors:
          with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout}
        do:
          - note:
              set: {timedOut: true}
"""

FAST = {"scheduler.pollInterval": "0.2s"}


def timers(database_url: str, instance_id: str) -> str:
    return psql(
        "SELECT coalesce(string_agg(kind || ':' || timer_key, ',' ORDER BY timer_key), '') "
        f"FROM workflow_timers WHERE instance_id = '{instance_id}'",
        database_url=database_url,
    )


def completed_at(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["completedAt"])


async def test_wait_writes_one_timer_and_the_wake_up_consumes_it(database_url: str) -> None:
    """Parking writes a ``wait`` row; the wake-up's snapshot deletes it."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=FAST) as app:
            await register_yaml(app, SLEEPER)
            instance_id = await start(app, "sleeper", {})
            await wait_for(app, instance_id, "waiting")
            assert timers(database_url, instance_id) == "wait:/do/0/nap/!wait"
            await wait_for(app, instance_id, "completed")
            assert timers(database_url, instance_id) == ""


async def test_restart_before_the_due_time_fires_on_time(database_url: str) -> None:
    """A timer survives a restart and fires at its due time, not later."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=FAST) as app:
            await register_yaml(app, SLEEPER)
            instance_id = await start(app, "sleeper", {})
            parked = await wait_for(app, instance_id, "waiting")
        due = datetime.fromisoformat(parked["createdAt"]).timestamp() + 4
        async with open_service(database_url, settings=FAST) as app:
            done = await wait_for(app, instance_id, "completed")
        assert done["output"] == {"woke": True}
        lateness = completed_at(done).timestamp() - due
        assert -0.5 < lateness < 1.5, lateness


async def test_restart_after_the_due_time_fires_at_once(database_url: str) -> None:
    """A timer that fell due while the service was down fires as soon as it is back."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=FAST) as app:
            await register_yaml(app, SLEEPER)
            instance_id = await start(app, "sleeper", {})
            await wait_for(app, instance_id, "waiting")
        await trio.sleep(4.5)
        async with open_service(database_url, settings=FAST) as app:
            started = trio.current_time()
            await wait_for(app, instance_id, "completed")
            assert trio.current_time() - started < 2.0


async def test_cancelling_a_parked_instance_removes_its_timers(database_url: str) -> None:
    """Cancel deletes the timer rows: nothing fires for an instance that ended."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=FAST) as app:
            await register_yaml(app, SLEEPER)
            instance_id = await start(app, "sleeper", {})
            await wait_for(app, instance_id, "waiting")
            response = await app.api.post(f"{INSTANCES}/{instance_id}/cancel")
            assert response.status_code == 200, response.text
            assert timers(database_url, instance_id) == ""
            await trio.sleep(4.5)
            body = (await app.api.get(f"{INSTANCES}/{instance_id}")).json()
            assert body["status"] == "cancelled"


async def test_suspension_does_not_shift_the_due_time(database_url: str) -> None:
    """A suspended instance keeps its absolute due time: resumed late, it fires at once."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=FAST) as app:
            await register_yaml(app, SLEEPER)
            instance_id = await start(app, "sleeper", {})
            await wait_for(app, instance_id, "waiting")
            assert (await app.api.post(f"{INSTANCES}/{instance_id}/suspend")).status_code == 200
            await trio.sleep(5)
            body = (await app.api.get(f"{INSTANCES}/{instance_id}")).json()
            assert body["status"] == "suspended"
            assert timers(database_url, instance_id) == "wait:/do/0/nap/!wait"
            resumed = trio.current_time()
            assert (await app.api.post(f"{INSTANCES}/{instance_id}/resume")).status_code == 200
            await wait_for(app, instance_id, "completed")
            assert trio.current_time() - resumed < 2.0


async def test_listen_timeout_is_a_durable_timer(database_url: str) -> None:
    """A listen's ``timeout`` parks as a ``timeout`` row and fires after a restart."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=FAST) as app:
            await register_yaml(app, GUARDED_LISTEN)
            instance_id = await start(app, "guarded", {})
            await wait_for(app, instance_id, "waiting")
            assert timers(database_url, instance_id).startswith("timeout:")
        async with open_service(database_url, settings=FAST) as app:
            done = await wait_for(app, instance_id, "completed")
            assert done["output"] == {"timedOut": True}
            assert timers(database_url, instance_id) == ""
