"""The chart's migration Job and Deployment, run as processes against the real PostgreSQL.

No cluster here: each container's command runs with the environment Kubernetes would give it
(its `env`, the Secret's values, the pod's name) and the rendered application.yaml at the path
of its ConfigMap mount. The hook Job migrates an empty database; the Deployment's `serve` then
becomes ready on it, with nothing left to migrate, under the pod's replica id. Without the Job
(an upgrade by `kubectl set image`, which bypasses Helm's hooks), the pods migrate themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.helm.rendering import RELEASE, render
from tests.support.chart import container, guide_values, objects_of, one, pod_environment
from tests.support.chart import secret_values as decoded_secrets
from tests.support.process import run_service
from tests.support.services import POSTGRES_URL, psql, url_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CLI = (sys.executable, "-m", "workflow_orchestrator.cli")
POD_NAME = f"{RELEASE}-7c9d8f6b5-q4k2m"


def chart_for(database: str) -> dict[str, list[dict[str, Any]]]:
    """The chart rendered for the test's PostgreSQL, with the guide's other values."""
    server = urllib.parse.urlsplit(POSTGRES_URL)
    return render(
        guide_values(
            f"database.host={server.hostname}",
            f"database.port={server.port or 5432}",
            f"database.name={database}",
            f"database.user={server.username or 'postgres'}",
        )
    )


def process_environment(
    rendered: dict[str, list[dict[str, Any]]], workload: dict[str, Any], name: str, root: Path
) -> dict[str, str]:
    """The container's environment, with application.yaml written where its config volume
    (ConfigMap) is mounted, moved under ``root``."""
    pod = workload["spec"]["template"]["spec"]
    spec = container(workload, name)
    (mount,) = [m for m in spec["volumeMounts"] if m["name"] == "config"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    config_map = one(rendered, "ConfigMap", volume["configMap"]["name"])
    folder = root / mount["mountPath"].lstrip("/")
    folder.mkdir(parents=True)
    for file, text in config_map["data"].items():
        (folder / file).write_text(text)
    secrets = decoded_secrets(m for m in objects_of(rendered) if m["kind"] == "Secret")
    environment = pod_environment(spec, secrets, POD_NAME)
    assert environment["WORKFLOW_CONFIG"] == f"{mount['mountPath']}/application.yaml"
    environment["WORKFLOW_CONFIG"] = str(root / environment["WORKFLOW_CONFIG"].lstrip("/"))
    return environment


def test_hook_job_migrates_then_the_pods_serve(database_name: str, tmp_path: Path) -> None:
    rendered = chart_for(database_name)
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    job = one(rendered, "Job", f"{RELEASE}-migrate")
    migrate = container(job, "migrate")
    assert migrate["command"] == ["workflow-orchestrator"]
    job_environment = process_environment(rendered, job, "migrate", tmp_path / "job")
    result = subprocess.run(
        [*CLI, *migrate["args"]],
        env={**base, **job_environment},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "applied migrations" in result.stdout

    deployment = one(rendered, "Deployment", RELEASE)
    server = container(deployment, "workflow-orchestrator")
    assert server["args"] == ["serve"]
    pod_environment_ = process_environment(
        rendered, deployment, "workflow-orchestrator", tmp_path / "pod"
    )
    with run_service(tmp_path, base_env=base, env=pod_environment_) as service:
        assert httpx.get(f"{service.api}/api/v1/workflow-definitions").status_code == 200
        log = service.log()
        members = psql(
            "SELECT string_agg(owner_id, ',') FROM cluster_members",
            database_url=url_for(database_name),
        )
    assert "schema is not current" not in log  # the Job migrated; the pods did not have to
    assert "applied schema migrations" not in log
    assert members == POD_NAME  # REPLICA_ID from the pod's name


def test_pods_migrate_when_no_hook_ran(database_name: str, tmp_path: Path) -> None:
    """`kubectl set image` starts the new pods without Helm's pre-upgrade Job: with the Job
    enabled in the chart, a pod still migrates an unmigrated database itself and becomes
    ready, instead of waiting unready for a `migrate` nobody runs."""
    rendered = chart_for(database_name)
    assert one(rendered, "Job", f"{RELEASE}-migrate")  # the Job is on, but does not run here
    deployment = one(rendered, "Deployment", RELEASE)
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    environment = process_environment(rendered, deployment, "workflow-orchestrator", tmp_path)
    with run_service(tmp_path, base_env=base, env=environment, ready_timeout=60) as service:
        assert httpx.get(f"{service.api}/api/v1/workflow-definitions").status_code == 200
        log = service.log()
    assert "applied schema migrations" in log
    assert "schema is not current" not in log
