"""The Helm chart and the plain manifests, rendered and checked offline.

Rendering goes through ``deploy/helm/rendering.py`` (helm-python-sdk: Helm v4's library, no
binary, no cluster); validation through kubernetes-validate's bundled OpenAPI schemas.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import all_versions

from deploy.helm.rendering import set_values

__all__ = [
    "GUIDE_SET",
    "KUBERNETES_VERSIONS",
    "container",
    "guide_values",
    "objects_of",
    "one",
    "pod_environment",
    "secret_values",
    "validation_problems",
]

#: The `--set` options of the deployment guide's `helm install` (tests/unit/packaging checks
#: them against the guide's text when it is present).
GUIDE_SET = (
    "database.host=db-host",
    "database.name=workflows",
    "database.user=workflow_user",
    "database.password=secure_password",
    "replicaCount=3",
)

#: The oldest and the newest Kubernetes whose schemas kubernetes-validate carries (the guide asks
#: for 1.22+; the oldest bundled is 1.25, so 1.22-1.24 are not checked here).
KUBERNETES_VERSIONS = (all_versions()[0], kubernetes_validate.latest_version())

#: Kinds whose schema is a CRD's, not Kubernetes's: checked field by field by their tests.
CUSTOM_KINDS = frozenset({"ServiceMonitor"})


def guide_values(*extra: str) -> dict[str, Any]:
    """The guide's values, then ``extra`` `--set` options."""
    return set_values(*GUIDE_SET, *extra)


def objects_of(rendered: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every object of a rendering, in template order."""
    return [manifest for manifests in rendered.values() for manifest in manifests]


def one(rendered: Mapping[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind`` named ``name``; fails when there is not exactly one."""
    found = [m for m in objects_of(rendered) if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name} in {sorted(rendered)}"
    return found[0]


def container(workload: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The container ``name`` of a Deployment's or Job's pod template."""
    containers = workload["spec"]["template"]["spec"]["containers"]
    (found,) = [c for c in containers if c["name"] == name]
    return dict(found)


def secret_values(secrets: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(Secret name, key) -> decoded value of the given Secrets."""
    return {
        (secret["metadata"]["name"], key): base64.b64decode(value).decode()
        for secret in secrets
        for key, value in secret.get("data", {}).items()
    }


def pod_environment(
    spec: Mapping[str, Any], secrets: Mapping[tuple[str, str], str], pod_name: str
) -> dict[str, str]:
    """The environment Kubernetes gives ``spec`` (a container): literal values, Secret keys
    (an optional one that is absent is left out) and the pod's name."""
    environment: dict[str, str] = {}
    for variable in spec.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
            continue
        source = variable["valueFrom"]
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name", source
            environment[variable["name"]] = pod_name
            continue
        reference = source["secretKeyRef"]
        key = (reference["name"], reference["key"])
        if key in secrets:
            environment[variable["name"]] = secrets[key]
        else:
            assert reference.get("optional"), f"{variable['name']}: no Secret value {key}"
    return environment


def validation_problems(manifests: Iterable[Mapping[str, Any]], version: str) -> list[str]:
    """What Kubernetes ``version``'s schemas (strict: no unknown field) refuse in ``manifests``."""
    problems = []
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            continue
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(dict(manifest), version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            problems.append(f"{where} (Kubernetes {version}): {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{where}: {error.message}")
    return problems
