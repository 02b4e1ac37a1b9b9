"""What the monitoring files query: metric names in PromQL, the Grafana dashboard's queries,
the alert rules' expressions, and the sample names a ``/metrics`` exposition can answer.

``metric_names`` is a tokenizer, not a parser (PromQL's syntax is checked by ``promtool``):
string literals, label matchers, ranges and grouping label lists are removed, then every
identifier left that is not a function call, a keyword or part of a number is a metric name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPOSITORY = Path(__file__).resolve().parents[2]
DASHBOARD = REPOSITORY / "dashboards" / "workflow-orchestrator.json"
PROMETHEUS = REPOSITORY / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yaml"

#: Metrics Prometheus makes itself for every target (not exported by the service).
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "inf", "nan"}
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*")
_GRAFANA_INTERVAL = re.compile(r"\$__(?:rate_interval|interval|range)\b")
_GRAFANA_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*[A-Za-z_]\w*\s*\)\s*$", re.S)


def without_grafana_variables(expr: str) -> str:
    """``expr`` as Prometheus receives it from the dashboard with every variable on All:
    ``$__rate_interval`` (and ``$__interval``, ``$__range``) a duration, ``$var`` ``.*``."""
    return _GRAFANA_VARIABLE.sub(".*", _GRAFANA_INTERVAL.sub("5m", expr))


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (see the module docstring)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(0)
        if name.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(name)
    return names


def family_sample_names(exposition: str) -> dict[str, set[str]]:
    """Each family of ``exposition`` with every sample name a scrape of it can answer, from its
    ``# TYPE`` line (so a family with no series yet counts) and its sample lines."""
    families = {}
    for family in text_string_to_metric_families(exposition):
        names = {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        elif family.type == "summary":
            names.update(f"{family.name}{suffix}" for suffix in ("", "_sum", "_count"))
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
        families[family.name] = names
    return families


def exported_sample_names(exposition: str) -> set[str]:
    """Every sample name a scrape of ``exposition`` can answer (see ``family_sample_names``)."""
    return {name for names in family_sample_names(exposition).values() for name in names}


def import_body() -> dict[str, Any]:
    """The dashboard file: the body of Grafana's ``POST /api/dashboards/import``."""
    body: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return body


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, also those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(where, expr)`` of every PromQL expression of the dashboard: the panels' targets and
    the selectors of the ``label_values(...)`` template variables."""
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['id']} {panel['title']!r}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = _LABEL_VALUES.match(text)
        if match is not None:
            found.append((f"variable {variable['name']}", match.group("selector")))
    return found


def alert_rules() -> list[dict[str, Any]]:
    """The rules of ``deploy/prometheus/alerts.yaml``."""
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]
