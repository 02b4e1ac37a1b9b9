"""The Prometheus files under deploy/prometheus, checked by ``promtool`` (Debian's
``prometheus`` package): the alert rules load and their unit tests pass, the example
configuration is valid and is the guide's scrape job, and every query of the Grafana
dashboard is valid PromQL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.promql import (
    PROMETHEUS,
    alert_rules,
    dashboard_queries,
    import_body,
    without_grafana_variables,
)
from tests.support.services import unavailable

SEVERITIES = {"critical", "warning", "info"}
#: The alerts the issue asks for, by the condition each one watches.
REQUIRED = {
    "WorkflowOrchestratorDown",  # service down
    "WorkflowOrchestratorAbsent",
    "WorkflowOrchestratorNotReady",  # not ready
    "WorkflowInstanceFaultsRising",  # faults rising
    "WorkflowEventLag",  # event lag
    "WorkflowOutboxBacklog",  # outbox backlog
    "WorkflowTimersLate",  # timer lateness
    "WorkflowNoSchedulerLeader",  # no scheduler leader
    "WorkflowHttpErrors",  # HTTP 5xx rate
}


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    """Run promtool; its output when it succeeds, the test fails with it otherwise."""
    binary = shutil.which("promtool")
    if binary is None:
        unavailable(
            "promtool is not installed; install Debian's prometheus package "
            "(apt-get install prometheus)"
        )
        raise AssertionError("unreachable")
    result = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_alert_rules_load() -> None:
    assert f"SUCCESS: {len(alert_rules())} rules found" in promtool("check", "rules", "alerts.yaml")


def test_alert_unit_tests_pass() -> None:
    """alerts.test.yaml: the main alerts fire with their labels and annotations, and stay
    quiet on healthy series."""
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yaml")


def test_example_configuration_is_valid_and_scrapes_as_the_guide_says() -> None:
    output = promtool("check", "config", "prometheus.yaml")
    assert "is valid prometheus config file syntax" in output
    config = yaml.safe_load((PROMETHEUS / "prometheus.yaml").read_text())
    assert config["rule_files"] == ["alerts.yaml"]
    assert config["scrape_configs"] == [
        {
            "job_name": "workflow-orchestrator",
            "scrape_interval": "15s",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": ["workflow-orchestrator:8081"]}],
        }
    ]


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each query, with the template variables on All, loads as a recording rule."""
    queries = dashboard_queries(import_body()["dashboard"])
    rules = [
        {"record": f"dashboard:query_{index}", "expr": without_grafana_variables(expr)}
        for index, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", str(path))


def test_every_alert_has_a_delay_a_severity_and_a_runbook() -> None:
    """``for``, a ``severity`` label, a summary and a description, and a runbook in
    docs/operations/monitoring.md at the section named after the alert."""
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= REQUIRED
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"] == f"docs/operations/monitoring.md#{name.lower()}"
