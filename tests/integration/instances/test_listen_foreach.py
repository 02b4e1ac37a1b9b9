"""A ``listen`` with ``foreach`` in the running service on PostgreSQL: the events that arrive
while an iteration runs (its HTTP call held back by the stand-in) are delivered to the instance
and processed by the next iterations, in order and exactly once; once the listen has ended,
its subscriptions are gone and an event of its type reaches nobody."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.event_flows import in_thread
from tests.support.events import INSTANCES, cloud_event, post_event, start
from tests.support.example_hosts import ExampleHosts, open_example_hosts
from tests.support.service import InProcessService, open_service, register_yaml

pytestmark = pytest.mark.integration

CHAT = "fake-chat-api.com"

# Posts each gossip to its room until one says "bye", then posts what it relayed.
RELAY = """\
document: {dsl: '1.0.3', namespace: test, name: relay, version: '1.0.0'}
do:
  - relay:
      listen:
        to:
          any:
            - with: {type: gossip}
          until: '${ .[-1].text == "bye" }'
      foreach:
        item: event
        at: i
        do:
          - post:
              call: http
              with:
                method: post
                endpoint: https://fake-chat-api.com/room/{roomId}
                body:
                  text: ${ $event.text }
                  at: ${ $i }
  - report:
      call: http
      with:
        method: post
        endpoint: https://fake-chat-api.com/room/report
        body: ${ . }
"""


def gossip(room: str, text: str) -> dict[str, Any]:
    return cloud_event("gossip", {"roomId": room, "text": text})


async def subscriptions(database_url: str, instance_id: str) -> str:
    """The task references of the instance's stored subscriptions, one a line."""
    return await in_thread(
        f"SELECT task_ref FROM event_subscriptions WHERE instance_id = '{instance_id}'",
        database_url,
    )


async def parked(database_url: str, instance_id: str) -> None:
    """Wait until the instance waits on its listen (status waiting, subscription stored)."""
    query = (
        "SELECT 1 FROM event_subscriptions s JOIN workflow_instances i USING (instance_id) "
        f"WHERE instance_id = '{instance_id}' AND i.status = 'waiting'"
    )
    # What the service commits signals nothing a test can wait on: poll the database.
    while not await in_thread(query, database_url):  # noqa: ASYNC110
        await trio.sleep(0.05)


async def posted(hosts: ExampleHosts, count: int) -> list[str]:
    """The paths of the chat stand-in's requests once it received ``count`` of them."""
    received = await trio.to_thread.run_sync(hosts.wait_received, CHAT, count)
    return [r.path for r in received]


async def finished(app: InProcessService, instance_id: str) -> dict[str, Any]:
    response = await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "30s"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] in ("completed", "faulted", "cancelled"), body
    return body


async def test_events_during_an_iteration_are_processed_in_order_once(
    database_url: str,
) -> None:
    """Two events published back to back while the first iteration's call is held are both
    delivered to the running instance and posted after it, in order, each once."""
    with open_example_hosts() as hosts, trio.fail_after(60):
        async with open_service(database_url, host_map=hosts.host_map) as app:
            await register_yaml(app, RELAY)
            instance_id = await start(app, "relay")
            await parked(database_url, instance_id)
            with hosts.held(CHAT, "/room/lobby"):
                await post_event(app, gossip("lobby", "hello"))
                assert await posted(hosts, 1) == ["/room/lobby"]  # the iteration is in flight
                second = await post_event(app, gossip("kitchen", "tea?"))
                third = await post_event(app, gossip("garden", "roses"))
                kept = await subscriptions(database_url, instance_id)
            assert (second["deliveredTo"], third["deliveredTo"]) == (1, 1)
            assert kept == "/do/0/relay"
            assert await posted(hosts, 3) == ["/room/lobby", "/room/kitchen", "/room/garden"]
            await parked(database_url, instance_id)
            await post_event(app, gossip("hall", "bye"))
            done = await finished(app, instance_id)
            inbox = await in_thread(
                f"SELECT count(*) FROM instance_inbox WHERE instance_id = '{instance_id}'",
                database_url,
            )
    assert done["status"] == "completed", done
    relayed = [
        {"room": "lobby", "posted": {"text": "hello", "at": 0}},
        {"room": "kitchen", "posted": {"text": "tea?", "at": 1}},
        {"room": "garden", "posted": {"text": "roses", "at": 2}},
        {"room": "hall", "posted": {"text": "bye", "at": 3}},
    ]
    assert done["output"] == {"room": "report", "posted": relayed}
    paths = [r.path for r in hosts.received(CHAT)]
    assert paths == ["/room/lobby", "/room/kitchen", "/room/garden", "/room/hall", "/room/report"]
    assert inbox == "0"


async def test_the_subscriptions_are_gone_once_the_listen_ends(database_url: str) -> None:
    """After the listen ended (its ``until`` held), the instance runs its next task without
    the listen's subscriptions: a gossip then reaches nobody."""
    with open_example_hosts() as hosts, trio.fail_after(60):
        async with open_service(database_url, host_map=hosts.host_map) as app:
            await register_yaml(app, RELAY)
            instance_id = await start(app, "relay")
            await parked(database_url, instance_id)
            with hosts.held(CHAT, "/room/report"):
                await post_event(app, gossip("hall", "bye"))
                assert await posted(hosts, 2) == ["/room/hall", "/room/report"]
                left = await subscriptions(database_url, instance_id)
                late = await post_event(app, gossip("lobby", "anyone?"))
            done = await finished(app, instance_id)
    assert left == ""
    assert late["deliveredTo"] == 0
    assert done["status"] == "completed", done
    assert done["output"] == {
        "room": "report",
        "posted": [{"room": "hall", "posted": {"text": "bye", "at": 0}}],
    }
    assert [r.path for r in hosts.received(CHAT)] == ["/room/hall", "/room/report"]
