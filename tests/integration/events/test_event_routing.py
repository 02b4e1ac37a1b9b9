"""Event routing in the running service (database source, HTTP binding): correlation to waiting
instances, deduplication, ``schedule.on`` starts, ``emit`` through the ``events`` table,
``listen`` with ``all`` across restarts, health and metrics."""

from __future__ import annotations

import json

import pytest
import trio

from tests.support.events import (
    EMITTER,
    INSTANCES,
    PAYMENT_WAITER,
    STRUCTURED_HEADERS,
    cloud_event,
    post_event,
    start,
    wait_for,
)
from tests.support.service import open_service, register_yaml
from tests.support.services import psql

pytestmark = pytest.mark.integration

ORDER_STARTER = """\
document: {dsl: '1.0.3', namespace: shop, name: order-starter, version: '1.0.0'}
schedule:
  on:
    one:
      with:
        type: order.placed
do:
  - remember:
      set:
        orderId: ${ .[0].data.orderId }
"""

SHIPMENT_WAITER = """\
document: {dsl: '1.0.3', namespace: shop, name: shipment-waiter, version: '1.0.0'}
do:
  - waitForShipment:
      listen:
        to:
          one:
            with:
              type: shipment.ready
            correlate:
              orderId:
                from: ${ .data.orderId }
                expect: ${ .orderId }
  - done:
      set:
        shipped: ${ .[0].orderId }
"""

ALL_WAITER = """\
document: {dsl: '1.0.3', namespace: shop, name: all-waiter, version: '1.0.0'}
do:
  - waitForBoth:
      listen:
        to:
          all:
            - with:
                type: part.a
            - with:
                type: part.b
  - done:
      set:
        parts: ${ length }
"""


async def test_correlated_events_complete_exactly_their_instances(database_url: str) -> None:
    """Each waiting instance gets the payment of its own order; a duplicate changes nothing."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, PAYMENT_WAITER)
            ids = {
                order: await start(app, "payment-waiter", {"orderId": order})
                for order in ("A-1", "A-2", "A-3")
            }
            for instance_id in ids.values():
                await wait_for(app, instance_id, "waiting")
            health = (await app.management.get("/health/detailed")).json()
            events = health["components"]["eventProcessing"]
            assert events["status"] == "healthy"
            assert events["details"]["subscriptionCount"] == 3
            payment = cloud_event("payment.received", {"orderId": "A-2", "amount": 20})
            receipt = await post_event(app, payment)
            assert receipt == {
                "id": payment["id"],
                "source": "/tests",
                "type": "payment.received",
                "duplicate": False,
                "deliveredTo": 1,
                "startedInstances": [],
            }
            done = await wait_for(app, ids["A-2"], "completed")
            assert done["output"] == {"paid": 20}
            again = await post_event(app, payment)
            assert again["duplicate"] is True and again["deliveredTo"] == 0
            for order in ("A-1", "A-3"):
                body = (await app.api.get(f"{INSTANCES}/{ids[order]}")).json()
                assert body["status"] == "waiting"
            await post_event(app, cloud_event("payment.received", {"orderId": "A-1", "amount": 10}))
            assert (await wait_for(app, ids["A-1"], "completed"))["output"] == {"paid": 10}
            stray = await post_event(app, cloud_event("payment.received", {"orderId": "Z-9"}))
            assert stray["deliveredTo"] == 0
            metrics = (await app.management.get("/metrics")).text
            assert 'workflow_orchestrator_events_unmatched_total{type="payment.received"} 1.0' in (
                metrics
            )
            assert 'workflow_orchestrator_events_duplicate_total{source="http"' in metrics
            health = (await app.management.get("/health/detailed")).json()
            assert health["components"]["eventProcessing"]["details"]["subscriptionCount"] == 1


async def test_schedule_on_starts_an_instance_per_event(database_url: str) -> None:
    """An event matching ``schedule.on`` starts one instance with the events array as input."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, ORDER_STARTER)
            event = cloud_event("order.placed", {"orderId": "O-7"})
            receipt = await post_event(app, event)
            assert len(receipt["startedInstances"]) == 1
            instance_id = receipt["startedInstances"][0]
            body = await wait_for(app, instance_id, "completed")
            assert body["workflowDefinitionId"] == "order-starter"
            assert body["output"] == {"orderId": "O-7"}
            again = await post_event(app, event)
            assert again["duplicate"] is True and again["startedInstances"] == []


async def test_emitted_event_reaches_a_listener_through_the_events_table(
    database_url: str,
) -> None:
    """With the database source, ``emit`` writes to ``events`` and the router delivers it."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, EMITTER)
            await register_yaml(app, SHIPMENT_WAITER)
            waiter = await start(app, "shipment-waiter", {"orderId": "S-1"})
            await wait_for(app, waiter, "waiting")
            emitter = await start(app, "emitter", {"orderId": "S-1"})
            await wait_for(app, emitter, "completed")
            done = await wait_for(app, waiter, "completed")
            assert done["output"] == {"shipped": "S-1"}


async def test_listen_all_collects_events_in_any_order_across_restarts(
    database_url: str,
) -> None:
    """``all`` completes when both events arrived, whatever the order, across a restart."""
    with trio.fail_after(90):
        async with open_service(database_url) as app:
            await register_yaml(app, ALL_WAITER)
            instance_id = await start(app, "all-waiter", {})
            await wait_for(app, instance_id, "waiting")
            await post_event(app, cloud_event("part.b", {"n": 2}))
            await trio.sleep(0.3)
            assert (await app.api.get(f"{INSTANCES}/{instance_id}")).json()["status"] == "waiting"
        async with open_service(database_url) as app:
            await post_event(app, cloud_event("part.a", {"n": 1}))
            done = await wait_for(app, instance_id, "completed")
            assert done["output"] == {"parts": 2}


async def test_database_producer_function_starts_and_delivers(database_url: str) -> None:
    """``workflow_publish_event`` feeds the router like the HTTP endpoint does."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, PAYMENT_WAITER)
            instance_id = await start(app, "payment-waiter", {"orderId": "D-1"})
            await wait_for(app, instance_id, "waiting")
            event = cloud_event("payment.received", {"orderId": "D-1", "amount": 5})
            psql(
                f"SELECT workflow_publish_event('{json.dumps(event)}'::jsonb)",
                database_url=database_url,
            )
            done = await wait_for(app, instance_id, "completed")
            assert done["output"] == {"paid": 5}


async def test_invalid_event_over_http_is_rejected_with_the_reason(database_url: str) -> None:
    """A body that is not a CloudEvent gets a 400 naming the missing attribute."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            broken = cloud_event("x", {})
            del broken["source"]
            response = await app.api.post(
                "/v1/events", content=json.dumps(broken), headers=STRUCTURED_HEADERS
            )
            assert response.status_code == 400
            assert "source" in response.json()["detail"]


async def test_unmatched_event_is_kept_for_a_listener_that_starts_shortly_after(
    database_url: str,
) -> None:
    """With ``unmatchedRetention``, an event that came before the listen still completes it."""
    with trio.fail_after(60):
        async with open_service(
            database_url, settings={"eventProcessing.unmatchedRetention": "5m"}
        ) as app:
            await register_yaml(app, PAYMENT_WAITER)
            early = await post_event(
                app, cloud_event("payment.received", {"orderId": "E-1", "amount": 3})
            )
            assert early["deliveredTo"] == 0
            other = await start(app, "payment-waiter", {"orderId": "E-2"})
            instance_id = await start(app, "payment-waiter", {"orderId": "E-1"})
            done = await wait_for(app, instance_id, "completed")
            assert done["output"] == {"paid": 3}
            await wait_for(app, other, "waiting")  # the retained event is not its payment


async def test_without_retention_an_early_event_is_not_kept(database_url: str) -> None:
    """By default an event that matched nothing is counted and dropped."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, PAYMENT_WAITER)
            await post_event(app, cloud_event("payment.received", {"orderId": "F-1"}))
            instance_id = await start(app, "payment-waiter", {"orderId": "F-1"})
            await wait_for(app, instance_id, "waiting")
            kept = psql("SELECT count(*) FROM unmatched_events", database_url=database_url)
            assert kept == "0"


async def test_event_routed_by_another_replica_wakes_the_owner(database_url: str) -> None:
    """An event posted to replica B completes an instance whose partition replica A owns."""
    with trio.fail_after(90):
        async with open_service(database_url) as first:
            await register_yaml(first, PAYMENT_WAITER)
            instance_id = await start(first, "payment-waiter", {"orderId": "M-1"})
            await wait_for(first, instance_id, "waiting")
            async with open_service(database_url) as second:
                held = second.service._leases
                assert held is not None and not held.current().partitions  # A holds them all
                receipt = await post_event(
                    second, cloud_event("payment.received", {"orderId": "M-1", "amount": 9})
                )
                assert receipt["deliveredTo"] == 1
                done = await wait_for(first, instance_id, "completed")
                assert done["output"] == {"paid": 9}


ALL_STARTER = """\
document: {dsl: '1.0.3', namespace: shop, name: pair-starter, version: '1.0.0'}
schedule:
  on:
    all:
      - with:
          type: order.paid
        correlate:
          orderId:
            from: ${ .data.orderId }
      - with:
          type: order.packed
        correlate:
          orderId:
            from: ${ .data.orderId }
do:
  - summarize:
      set:
        orderId: ${ .[0].data.orderId }
        steps: ${ [.[].type] }
"""


async def test_schedule_on_all_starts_once_every_correlated_event_arrived(
    database_url: str,
) -> None:
    """``all`` starts one instance per correlation key when its last event arrives."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, ALL_STARTER)
            first = await post_event(app, cloud_event("order.packed", {"orderId": "P-1"}))
            other = await post_event(app, cloud_event("order.paid", {"orderId": "P-2"}))
            assert first["startedInstances"] == other["startedInstances"] == []
            last = await post_event(app, cloud_event("order.paid", {"orderId": "P-1"}))
            assert len(last["startedInstances"]) == 1
            body = await wait_for(app, last["startedInstances"][0], "completed")
            assert body["output"] == {"orderId": "P-1", "steps": ["order.paid", "order.packed"]}
            waiting = psql("SELECT corr_key FROM event_start_progress", database_url=database_url)
            assert waiting == '["P-2"]'


SOURCE_WAITER = """\
document: {dsl: '1.0.3', namespace: shop, name: source-waiter, version: '1.0.0'}
do:
  - waitForRefund:
      listen:
        to:
          any:
            - with:
                type: refund.issued
                source: https://bank.example
                data:
                  currency: EUR
"""


async def test_static_attributes_and_data_filters_select_the_event(database_url: str) -> None:
    """Events with another source or other data are not delivered; the matching one is."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, SOURCE_WAITER)
            instance_id = await start(app, "source-waiter", {})
            await wait_for(app, instance_id, "waiting")
            wrong_source = cloud_event("refund.issued", {"currency": "EUR"})
            assert (await post_event(app, wrong_source))["deliveredTo"] == 0
            wrong_data = {
                **cloud_event("refund.issued", {"currency": "USD"}),
                "source": "https://bank.example",
            }
            assert (await post_event(app, wrong_data))["deliveredTo"] == 0
            right = {
                **cloud_event("refund.issued", {"currency": "EUR", "amount": 4}),
                "source": "https://bank.example",
            }
            assert (await post_event(app, right))["deliveredTo"] == 1
            done = await wait_for(app, instance_id, "completed")
            assert done["output"] == [{"currency": "EUR", "amount": 4}]
