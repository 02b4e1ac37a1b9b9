"""The router's decisions without I/O: subscription keys, schedule.on starts and slots, outcomes."""

from __future__ import annotations

import uuid
from typing import Any

from workflow_orchestrator.dsl import ExpressionEngine
from workflow_orchestrator.dsl.model import ConsumptionStrategy, EventFilter
from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._matching import (
    Starter,
    by_source,
    event_to_route,
    instance_starts,
    matches_any,
    route_outcome,
    start_key,
    start_slots,
    starter_of,
    subscription_keys,
)
from workflow_orchestrator.events._routing import EventOutcome
from workflow_orchestrator.instances import correlation_key
from workflow_orchestrator.storage.events import RoutedBatch, StartSlot, SubscriptionShape
from workflow_orchestrator.storage.instances import InstanceStart

ENGINE = ExpressionEngine()


def event(type_: str = "order.paid", **data: Any) -> CloudEvent:
    return CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": "e-1",
            "source": "/shop",
            "type": type_,
            "data": data,
        }
    )


def starter(mode: str, *filters: EventFilter, definition_id: str = "billing") -> Starter:
    return Starter(
        definition_id=definition_id,
        version="1.0.0",
        strategy=ConsumptionStrategy(mode=mode, filters=tuple(filters)),
    )


def on_type(type_: str, **correlate: Any) -> EventFilter:
    return EventFilter(with_={"type": type_}, correlate=correlate)


async def test_every_event_matches_its_plain_and_wildcard_keys() -> None:
    """Without shapes an event matches (type, 0, '') and ('', 0, '') only."""
    keys = await subscription_keys(ENGINE, event(orderId="A-1"), ())
    assert keys == (("order.paid", 0, ""), ("", 0, ""))


async def test_a_shape_of_the_type_adds_its_key_and_correlation_key() -> None:
    """A shape of the event's type adds its '' key and the key of its from values."""
    shape = SubscriptionShape(
        shape_id=7, event_type="order.paid", correlate=(("orderId", "${ .data.orderId }"),)
    )
    keys = await subscription_keys(ENGINE, event(orderId="A-1"), (shape,))
    assert keys[2:] == (("order.paid", 7, ""), ("order.paid", 7, correlation_key(["A-1"])))


async def test_shapes_of_other_types_are_ignored_and_wildcard_shapes_apply() -> None:
    """A shape of another type adds nothing; a shape of any type ('') applies."""
    other = SubscriptionShape(shape_id=3, event_type="order.shipped", correlate=())
    anything = SubscriptionShape(shape_id=4, event_type="", correlate=())
    keys = await subscription_keys(ENGINE, event(), (other, anything))
    assert keys[2:] == (("", 4, ""), ("", 4, correlation_key([])))


async def test_a_from_that_fails_on_the_event_leaves_only_the_shape_blank_key() -> None:
    """A correlation not computable from the event alone adds no correlation key."""
    shape = SubscriptionShape(
        shape_id=9, event_type="order.paid", correlate=(("n", "${ .data.orderId + 1 }"),)
    )
    keys = await subscription_keys(ENGINE, event(orderId="A-1"), (shape,))
    assert keys[2:] == (("order.paid", 9, ""),)


async def test_matches_any_compares_static_values_and_treats_failures_as_no_match() -> None:
    """A static with matches by containment; a failing expression is no match, not an error."""
    paid = event(total=42)
    assert await matches_any(ENGINE, (on_type("order.shipped"), on_type("order.paid")), paid)
    failing = EventFilter(with_={"data": '${ .total + "x" }'})
    assert not await matches_any(ENGINE, (failing,), paid)


async def test_one_and_any_starters_start_with_the_events_array_and_a_stable_key() -> None:
    """schedule.on one/any starts an instance keyed by definition and event source+id."""
    paid = event(orderId="A-1")
    starters = (
        starter("one", on_type("order.paid")),
        starter("any", on_type("order.shipped"), definition_id="shipping"),
        starter("all", on_type("order.paid"), definition_id="joined"),
    )
    starts = await instance_starts(ENGINE, paid, starters)
    assert starts == (
        InstanceStart(
            definition_id="billing",
            definition_version="1.0.0",
            input=[paid.to_json()],
            idempotency_key="on:billing:/shop#e-1",
        ),
    )


async def test_all_starters_get_the_slot_of_their_first_matching_filter() -> None:
    """An all start records the event in its first matching filter's slot, keyed by from."""
    correlate = {"order": {"from": "${ .data.orderId }"}}
    joined = starter(
        "all", on_type("order.placed"), on_type("order.paid", **correlate), on_type("order.paid")
    )
    slots = await start_slots(ENGINE, event(orderId="A-1"), (joined, starter("one")))
    assert slots == (
        StartSlot(
            definition_id="billing",
            definition_version="1.0.0",
            corr_key=correlation_key(["A-1"]),
            index=1,
            slots=3,
        ),
    )


async def test_a_filter_whose_correlation_fails_gives_way_to_the_next_one() -> None:
    """A matching filter whose from cannot be computed is passed over for the next filter."""
    broken = on_type("order.paid", order={"from": "${ .data.orderId + 1 }"})
    joined = starter("all", broken, on_type("order.paid"))
    slots = await start_slots(ENGINE, event(orderId="A-1"), (joined,))
    assert [(slot.index, slot.corr_key) for slot in slots] == [(1, "")]


async def test_start_key_honours_a_static_expect_and_ignores_an_expression_one() -> None:
    """A static expect that differs means no key; an expression expect is checked later."""
    paid = event(orderId="A-1")
    assert await start_key(ENGINE, on_type("t"), paid) == ""
    wrong = on_type("t", order={"from": "${ .data.orderId }", "expect": "B-2"})
    assert await start_key(ENGINE, wrong, paid) is None
    right = on_type("t", order={"from": "${ .data.orderId }", "expect": "A-1"})
    assert await start_key(ENGINE, right, paid) == correlation_key(["A-1"])
    dynamic = on_type("t", order={"from": "${ .data.orderId }", "expect": "${ .x }"})
    assert await start_key(ENGINE, dynamic, paid) == correlation_key(["A-1"])


def test_starter_of_needs_a_schedule_on() -> None:
    """Only a schedule with ``on`` makes a starter."""
    assert starter_of("billing", "1.0.0", None) is None


def test_event_to_route_deduplicates_on_source_and_id() -> None:
    """The routed record carries source and id ('' when missing) and the event as JSON."""
    routed = event_to_route(CloudEvent(attributes={"type": "t"}), keys=(), starts=(), slots=())
    assert (routed.source, routed.id, routed.type, routed.event) == ("", "", "t", {"type": "t"})


def test_route_outcome_keeps_the_batch_order() -> None:
    """Each event gets its duplicate flag, deliveries and started ids, in batch order."""
    started = uuid.uuid4()
    routed = RoutedBatch(
        duplicate=(False, True),
        delivered=(2, 0),
        started=((started,), ()),
        activations=(),
        unmatched_types=(),
    )
    assert route_outcome(routed).events == (
        EventOutcome(duplicate=False, delivered=2, started=(str(started),)),
        EventOutcome(duplicate=True, delivered=0, started=()),
    )


def test_by_source_groups_in_arrival_order() -> None:
    """Submissions of one source route together, in the order they arrived."""
    items = [("http", 1), ("database", 2), ("http", 3)]
    assert by_source(items, lambda item: item[0]) == {
        "http": [("http", 1), ("http", 3)],
        "database": [("database", 2)],
    }
