"""The metric names the monitoring tests find in PromQL and in an exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.support.promql import (
    exported_sample_names,
    family_sample_names,
    metric_names,
    without_grafana_variables,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        ('absent(up{job="workflow-orchestrator"})', {"up"}),
        (
            'histogram_quantile(0.99, sum by (route, le) (rate(a_seconds_bucket{app="api"}'
            "[$__rate_interval])))",
            {"a_seconds_bucket"},
        ),
        # A grouping after the aggregation, vector matching, keywords and numbers.
        (
            'sum(rate(x_total{status=~"5..", route="/by (x)"}[5m])) by (job) / ignoring (status)'
            " group_left (route) sum without (status) (y_total) > bool 1e3 and on (job) z",
            {"x_total", "y_total", "z"},
        ),
        # Label values and strings that look like metrics or functions are not metrics.
        ("count(w{le=\"rate(q)\", name='sum'} offset 5m) unless v", {"w", "v"}),
        ("label_replace(m, 'dst', '$1', 'src', '(.*)')", {"m"}),
        ("sum(a:recorded:rate5m) or vector(0)", {"a:recorded:rate5m"}),
    ],
)
def test_metric_names_of_expressions(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_grafana_variables_become_what_all_selects() -> None:
    expr = 'rate(x_total{job=~"$job", instance=~"${instance}"}[$__rate_interval])'
    assert without_grafana_variables(expr) == 'rate(x_total{job=~".*", instance=~".*"}[5m])'


def test_exported_names_include_families_without_series() -> None:
    """A labelled counter or histogram that has no series yet still answers its sample names;
    a gauge its own name."""
    registry = CollectorRegistry()
    Counter("app_things", "help", ["kind"], registry=registry)
    Histogram("app_seconds", "help", ["kind"], registry=registry)
    Gauge("app_level", "help", registry=registry)
    text = generate_latest(registry).decode()
    assert family_sample_names(text) == {
        "app_things": {"app_things_total"},
        "app_seconds": {"app_seconds_bucket", "app_seconds_sum", "app_seconds_count"},
        "app_level": {"app_level"},
    }
    assert "app_seconds_bucket" in exported_sample_names(text)
