"""dashboards/workflow-orchestrator.json is the body Grafana's import API takes (``curl -X POST
http://grafana:3000/api/dashboards/import -d @dashboards/workflow-orchestrator.json``), with
one Prometheus data source input, the template variables and the panels the issue lists."""

from __future__ import annotations

from typing import Any

from tests.support.promql import import_body, panels

DATA_SOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = import_body()["dashboard"]
    return board


def test_the_file_is_an_import_request() -> None:
    """The fields of Grafana's ImportDashboardRequest; every input the dashboard declares
    (``__inputs``) is given, so the import does not fail with "Dashboard input variable ...
    missing from import command"."""
    body = import_body()
    assert set(body) == {"dashboard", "overwrite", "inputs", "folderUid"}
    assert body["overwrite"] is True and body["folderUid"] == ""
    given = {(i["name"], i["type"]) for i in body["inputs"]}
    declared = {(i["name"], i["type"]) for i in body["dashboard"]["__inputs"]}
    assert declared == given == {("DS_PROMETHEUS", "datasource")}
    assert body["inputs"][0]["pluginId"] == body["dashboard"]["__inputs"][0]["pluginId"]
    assert body["inputs"][0]["pluginId"] == "prometheus"
    board = body["dashboard"]
    assert board["id"] is None and board["uid"] == "workflow-orchestrator"
    assert board["schemaVersion"] == 39


def test_panels_have_unique_ids_the_data_source_units_and_room() -> None:
    """Panel ids are unique; every panel and query uses ``${DS_PROMETHEUS}``; every panel has
    a unit and a description; panels do not overlap on the 24-column grid."""
    board = dashboard()
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(board):
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(position["x"], position["x"] + position["w"])
            for y in range(position["y"], position["y"] + position["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] == "row":
            assert not panel["collapsed"] and panel["panels"] == []
            continue
        assert panel["datasource"] == DATA_SOURCE, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        references = [target["refId"] for target in panel["targets"]]
        assert len(references) == len(set(references))
        for target in panel["targets"]:
            assert target["datasource"] == DATA_SOURCE and target["expr"].strip()


def test_template_variables_select_job_namespace_replica_and_definition() -> None:
    """The variables query Prometheus through the same data source. One job at a time (so
    ``up`` counts the service's targets only); the others offer All, which selects everything
    of the job, also series without the label (a namespace outside Kubernetes)."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert list(variables) == ["job", "namespace", "instance", "definition"]
    for variable in variables.values():
        assert variable["datasource"] == DATA_SOURCE
        assert variable["query"]["query"].startswith("label_values(")
    assert not variables["job"]["includeAll"] and not variables["job"]["multi"]
    for name in ("namespace", "instance", "definition"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"


def test_the_panels_the_issue_lists() -> None:
    """Instance starts, completions and faults by definition; running and waiting instances;
    task duration; event routing rate, lag and dead letters; outbox backlog; timer lateness;
    database pool use and latency; supervisor restarts; HTTP rate, latency and errors;
    leadership."""
    titles = {panel["title"] for panel in panels(dashboard())}
    assert {
        "Instance starts by definition",
        "Completions by definition",
        "Faults and cancellations by definition",
        "Running and waiting instances",
        "Task duration",
        "Events received and routed",
        "Kafka consumer lag",
        "Dead letters, duplicates, unmatched",
        "Outbox backlog",
        "Timer lateness",
        "Pool use",
        "Database latency",
        "Supervisor restarts",
        "HTTP requests",
        "API latency p99 by route",
        "HTTP errors",
        "Schedule leadership",
    } <= titles
