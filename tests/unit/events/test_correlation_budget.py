"""The router's per-event correlation budget: a pathological event degrades to "not
computable" and the next event is routed as usual."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from tests.unit.events.test_matching import event
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.expressions import ExpressionError, ExpressionLimits
from workflow_orchestrator.events._correlation_budget import CorrelationBudget
from workflow_orchestrator.events._matching import subscription_keys
from workflow_orchestrator.instances import correlation_key
from workflow_orchestrator.storage.events import SubscriptionShape

SLOW = SubscriptionShape(
    shape_id=1, event_type="order.paid", correlate=(("n", '${ .data.s | split("") | length }'),)
)
FAST = SubscriptionShape(
    shape_id=2, event_type="order.paid", correlate=(("orderId", "${ .data.orderId }"),)
)


async def test_an_event_over_its_budget_keeps_only_the_blank_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A from over a 4 MB value (sent to the sandbox, which would take seconds) is cut off at
    the budget; the event's later expressions fail at once, so its shapes keep only their ''
    keys (waiting instances check the event themselves). The next event gets a fresh budget."""
    huge: dict[str, Any] = {"orderId": "A-1", "s": "x" * 4_000_000}
    async with open_expression_engine(ExpressionLimits(cpu_seconds=30)) as engine:
        router_engine = engine.for_owner("event-router")
        with trio.fail_after(30), caplog.at_level(logging.WARNING):
            budget = CorrelationBudget(router_engine, 0.2, event="/shop#e-1")
            keys = await subscription_keys(budget, event(**huge), (SLOW, FAST))
            assert budget.spent
            with pytest.raises(ExpressionError) as caught:
                await budget.evaluate("${ .data.orderId }", {"data": huge}, {})
            fresh = CorrelationBudget(router_engine, 0.2, event="/shop#e-2")
            next_keys = await subscription_keys(fresh, event(orderId="A-2", s="ab"), (SLOW, FAST))
    assert keys[2:] == (("order.paid", 1, ""), ("order.paid", 2, ""))
    assert caught.value.detail == (
        "the event's correlation expressions used up their 0.2s "
        "(eventProcessing.correlationBudget); simplify them or raise the setting"
    )
    assert next_keys[2:] == (
        ("order.paid", 1, ""),
        ("order.paid", 1, correlation_key([2])),
        ("order.paid", 2, ""),
        ("order.paid", 2, correlation_key(["A-2"])),
    )
    assert not fresh.spent
    assert [record.getMessage() for record in caplog.records] == [
        "event /shop#e-1: its correlation and filter expressions took longer than 0.2s "
        "(eventProcessing.correlationBudget); the rest count as not computable for this event"
    ]
