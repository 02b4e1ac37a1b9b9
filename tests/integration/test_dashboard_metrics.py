"""Every metric the Grafana dashboard and the Prometheus alert rules query is exported by a
running service, and the instance, readiness, leadership and database series carry the work
it did: one service, a completed and a faulted instance, one scrape of ``/metrics``."""

from __future__ import annotations

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.promql import (
    SYNTHETIC,
    alert_rules,
    dashboard_queries,
    exported_sample_names,
    family_sample_names,
    import_body,
    metric_names,
)
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

INSTANCES = "/v1/workflow-instances"

COMPLETES = """\
document: {dsl: '1.0.3', namespace: metrics, name: completes, version: '1.0.0'}
do:
  - first:
      set: {step: 1}
  - second:
      set: {step: 2}
"""

FAULTS = """\
document: {dsl: '1.0.3', namespace: metrics, name: faults, version: '1.0.0'}
do:
  - fail:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
          status: 500
          title: Boom
"""


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: str) -> Samples:
    """Every sample of ``exposition`` by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def exposition(database_url: str) -> str:
    """``/metrics`` of a service that ran one instance of each definition to its end."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, COMPLETES)
            await register_yaml(app, FAULTS)
            for name, status in (("completes", "completed"), ("faults", "faulted")):
                started = await app.api.post(INSTANCES, json={"workflowDefinitionId": name})
                assert started.status_code == 201, started.text
                ended = await app.api.get(f"{INSTANCES}/{started.json()['id']}?wait=20s")
                assert ended.json()["status"] == status, ended.text
            response = await app.management.get("/metrics")
            assert response.status_code == 200
            return response.text


async def test_every_queried_metric_is_exported(exposition: str) -> None:
    """Each metric of each dashboard query (panels and template variables) and of each alert
    rule is a sample name the service exports (a histogram's _bucket/_sum/_count, a
    counter's _total), or Prometheus' own ``up``; and the new series hold the work done."""
    exported = exported_sample_names(exposition)
    on_dashboard = dashboard_queries(import_body()["dashboard"])
    queries = on_dashboard + [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    queried: dict[str, list[str]] = {}
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        for name in names:
            queried.setdefault(name, []).append(where)
    missing = {name: where for name, where in queried.items() if name not in exported | SYNTHETIC}
    assert missing == {}
    # The dashboard shows every family of the service's own (process_* and python_* aside).
    shown = {name for _, expr in on_dashboard for name in metric_names(expr)}
    unshown = {
        family
        for family, names in family_sample_names(exposition).items()
        if family.startswith("workflow_") and not names & shown
    }
    assert unshown == set()

    found = samples(exposition)
    started = "workflow_orchestrator_instances_started_total"
    ended = "workflow_orchestrator_instances_ended_total"
    tasks = "workflow_orchestrator_task_duration_seconds_count"
    database = "workflow_orchestrator_db_query_duration_seconds_count"
    assert value(found, started, definition="completes") == 1
    assert value(found, started, definition="faults") == 1
    assert value(found, ended, definition="completes", status="completed") == 1
    assert value(found, ended, definition="faults", status="faulted") == 1
    assert value(found, tasks, definition="completes", outcome="completed") == 2
    assert value(found, tasks, definition="faults", outcome="faulted") == 1
    assert value(found, "workflow_orchestrator_ready") == 1
    assert value(found, "workflow_orchestrator_scheduler_leader") == 1
    assert value(found, database, pool="primary") > 0
    assert value(found, database, pool="api") > 0
