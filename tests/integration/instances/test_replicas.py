"""Two replicas on one database: an instance started on the replica that does not hold its
partition runs on the one that does, at once (not after a sweep)."""

from __future__ import annotations

import pytest
import trio

from tests.support.events import start, wait_for
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

QUICK = """\
document: {dsl: '1.0.3', namespace: demo, name: quick, version: '1.0.0'}
do:
  - one:
      set: {done: true}
"""


async def test_start_on_a_replica_without_partitions_runs_on_the_owner(database_url: str) -> None:
    """The owner is woken through the database and completes the instance within a second."""
    with trio.fail_after(60):
        async with open_service(database_url) as owner:
            await register_yaml(owner, QUICK)
            async with open_service(database_url) as other:
                leases = other.service._leases
                assert leases is not None and not leases.current().partitions
                started = trio.current_time()
                instance_id = await start(other, "quick", {})
                done = await wait_for(owner, instance_id, "completed")
                assert done["output"] == {"done": True}
                assert trio.current_time() - started < 2.0  # the sweep would take 5 s or more


WAITS = """\
document: {dsl: '1.0.3', namespace: demo, name: waits, version: '1.0.0'}
do:
  - pause:
      wait: {milliseconds: 500}
  - one:
      set: {done: true}
"""


async def test_long_poll_on_another_replica_wakes_on_the_owners_commit(database_url: str) -> None:
    """A long poll held by a replica where the instance does not run returns once the owner
    commits its end (a notification), not at the next re-check of the instance row."""
    recheck = {"server.longPollRecheckInterval": "60s"}
    with trio.fail_after(60):
        async with open_service(database_url) as owner:
            await register_yaml(owner, WAITS)
            async with open_service(database_url, settings=recheck) as other:
                leases = other.service._leases
                assert leases is not None and not leases.current().partitions
                instance_id = await start(other, "waits", {})
                # The poll asks for 30 s; the client gives up after 20 s, long before the 60 s
                # re-check: only the owner's notification can answer it in time.
                answer = await other.api.get(
                    f"/v1/workflow-instances/{instance_id}", params={"wait": "30s"}, timeout=20
                )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "completed"
