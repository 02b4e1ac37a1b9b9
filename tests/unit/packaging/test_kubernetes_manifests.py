"""deploy/kubernetes/: the plain manifests are the chart's output, and valid Kubernetes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from deploy.helm.plain_manifests import (
    MANIFESTS_DIR,
    differences,
    manifests,
    manifests_values,
)
from deploy.helm.rendering import NAMESPACE, RELEASE
from tests.support.chart import (
    KUBERNETES_VERSIONS,
    container,
    pod_environment,
    secret_values,
    validation_problems,
)
from tests.support.guide import guide_blocks, require_guide

GUIDE_SECRET = "workflow-orchestrator-secrets"


@pytest.fixture(scope="module")
def applied() -> list[dict[str, Any]]:
    """Every object `kubectl apply -f deploy/kubernetes/` applies, in its order."""
    objects = []
    for path in sorted(MANIFESTS_DIR.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_manifests_are_the_charts_output() -> None:
    """The files equal the chart rendered with plain-manifests-values.yaml (no file missing,
    stale or extra)."""
    problems = differences(manifests())
    assert problems == [], (
        f"deploy/kubernetes/ differs from the chart's output ({', '.join(problems)}): "
        "regenerate it with `make manifests`"
    )


def test_manifests_use_the_guides_release_and_secret() -> None:
    values = manifests_values()
    assert values["database"]["existingSecret"] == GUIDE_SECRET
    assert (values["database"]["host"], values["database"]["name"]) == ("db-host", "workflows")


def test_manifests_validate(applied: list[dict[str, Any]]) -> None:
    """Every object is valid for the oldest and newest Kubernetes schemas at hand."""
    problems = [p for version in KUBERNETES_VERSIONS for p in validation_problems(applied, version)]
    assert problems == []


def test_manifests_apply_in_order_into_the_guides_namespace(
    applied: list[dict[str, Any]],
) -> None:
    """The Namespace first, then the Secret; every other object in workflow-system; no Helm
    bookkeeping left."""
    assert [o["kind"] for o in applied[:2]] == ["Namespace", "Secret"]
    assert applied[0]["metadata"]["name"] == NAMESPACE
    for manifest in applied[1:]:
        assert manifest["metadata"]["namespace"] == NAMESPACE
        text = yaml.safe_dump(manifest)
        assert "helm.sh/" not in text and "managed-by" not in text
    kinds = {o["kind"] for o in applied}
    assert kinds == {
        "Namespace",
        "Secret",
        "ServiceAccount",
        "ConfigMap",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }


def test_secret_is_the_guides(applied: list[dict[str, Any]]) -> None:
    """The guide's Secret: its name, namespace and two keys (placeholders, base64)."""
    (block,) = [b for b in guide_blocks(require_guide()) if "kind: Secret" in b.text]
    guide = yaml.safe_load(block.text)
    (secret,) = of_kind(applied, "Secret")
    assert secret["metadata"] == guide["metadata"]
    assert secret["type"] == guide["type"]
    assert set(secret["data"]) == set(guide["data"]) == {"database-password", "kafka-password"}
    for value in secret["data"].values():
        assert base64.b64decode(value, validate=True)


def test_deployment_runs_three_replicas_reading_the_guides_secret(
    applied: list[dict[str, Any]],
) -> None:
    """3 replicas; DATABASE_PASSWORD by the guide's secretKeyRef; probes on 8081; the Job
    migrates with the same Secret."""
    (deployment,) = of_kind(applied, "Deployment")
    assert deployment["metadata"]["name"] == RELEASE
    assert deployment["spec"]["replicas"] == 3
    server = container(deployment, "workflow-orchestrator")
    (block,) = [b for b in guide_blocks(require_guide()) if "secretKeyRef" in b.text]
    (guide_variable,) = yaml.safe_load(block.text)["env"]
    assert guide_variable in server["env"]
    management = {p["name"]: p["containerPort"] for p in server["ports"]}["management"]
    assert management == 8081
    assert server["readinessProbe"]["httpGet"]["port"] == "management"
    (job,) = of_kind(applied, "Job")
    assert guide_variable in container(job, "migrate")["env"]
    secrets = secret_values(of_kind(applied, "Secret"))
    environment = pod_environment(server, secrets, f"{RELEASE}-abc")
    assert environment["DATABASE_PASSWORD"] == "change-me"
    assert environment["KAFKA_PASSWORD"] == "change-me"
