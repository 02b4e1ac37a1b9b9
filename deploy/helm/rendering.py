"""Render the chart offline with helm-python-sdk (Helm v4's library; no helm binary, no cluster).

Shared by the scripts beside it (``plain_manifests``, ``package_chart``) and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python
import yaml

__all__ = [
    "CHART_DIR",
    "NAMESPACE",
    "RELEASE",
    "REPOSITORY",
    "deep_merge",
    "render",
    "render_templates",
    "set_values",
]

CHART_DIR = Path(__file__).resolve().parent / "workflow-orchestrator"
REPOSITORY = CHART_DIR.parents[2]
#: The deployment guide's `helm install workflow-orchestrator ... --namespace workflow-system`.
RELEASE = "workflow-orchestrator"
NAMESPACE = "workflow-system"


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def set_values(*expressions: str) -> dict[str, Any]:
    """The values of ``--set`` options, in order (a later one wins), parsed as Helm does."""
    values: dict[str, Any] = {}
    for expression in expressions:
        values = deep_merge(values, helm_python.parse_set_string(expression))
    return values


def render_templates(
    values: Mapping[str, Any],
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    upgrade: bool = False,
) -> dict[str, str]:
    """Template path inside the chart (``templates/deployment.yaml``) -> rendered text.

    Raises ``helm_python.HelmValuesError`` when values.schema.json refuses the values and
    ``helm_python.HelmRenderError`` when a template fails (``fail``).
    """
    with helm_python.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(
            dict(values),
            name=release,
            namespace=namespace,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    prefix = f"{CHART_DIR.name}/"
    return {path.removeprefix(prefix): text for path, text in rendered.items()}


def render(
    values: Mapping[str, Any],
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    upgrade: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Template path -> the Kubernetes objects it renders (templates rendering none omitted;
    NOTES.txt is not an object)."""
    objects: dict[str, list[dict[str, Any]]] = {}
    templates = render_templates(values, release=release, namespace=namespace, upgrade=upgrade)
    for path, text in sorted(templates.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        documents = [doc for doc in yaml.safe_load_all(text) if doc]
        if documents:
            objects[path] = documents
    return objects
