"""Metric labels whose values come from clients stay bounded in number and length."""

from __future__ import annotations

from workflow_orchestrator.observability import (
    MAX_LABEL_LENGTH,
    OTHER,
    BoundedLabel,
    ServiceMetrics,
    http_method_label,
)


def test_long_values_are_cut_and_new_values_past_the_cap_are_other() -> None:
    """A value longer than the cap is cut (ending in ...); past the cap of distinct values a
    new value is 'other' while the values seen first keep their own series."""
    label = BoundedLabel(max_values=3, max_length=10)
    assert label("order.paid") == "order.paid"
    assert label("x" * 50) == "xxxxxxx..."
    assert label("third") == "third"
    assert label("fourth") == OTHER
    assert label("order.paid") == "order.paid"
    assert label("x" * 60) == "xxxxxxx..."  # the same cut value: its series exists
    assert label.distinct() == 3


def test_huge_event_types_do_not_grow_the_exposition() -> None:
    """20 events with 100 KB types, and 10,000 distinct types, add a few KB to /metrics."""
    metrics = ServiceMetrics()
    baseline = len(metrics.exposition())
    for index in range(20):
        event_type = f"{index:02d}" + "t" * 100_000
        metrics.events_received.labels("http", metrics.event_type(event_type)).inc()
        metrics.events_routed.labels("http", metrics.event_type(event_type)).inc()
    grown = len(metrics.exposition()) - baseline
    for index in range(10_000):
        metrics.events_unmatched.labels(metrics.event_type(f"type-{index}")).inc()
    text = metrics.exposition().decode()
    assert grown < 20 * 2 * (MAX_LABEL_LENGTH + 100)
    assert 'workflow_orchestrator_events_unmatched_total{type="other"} 9820.0' in text
    assert "t" * (MAX_LABEL_LENGTH + 1) not in text


def test_unknown_http_methods_are_other() -> None:
    """A request with a made-up method is counted as 'other', not under its own label."""
    metrics = ServiceMetrics()
    metrics.observe_request(app="api", method="X" * 5000, route="unmatched", status=405, seconds=0)
    metrics.observe_request(app="api", method="GET", route="unmatched", status=404, seconds=0)
    text = metrics.exposition().decode()
    assert http_method_label("PATCH") == "PATCH"
    assert 'method="other"' in text and 'method="GET"' in text
    assert "XXXX" not in text
