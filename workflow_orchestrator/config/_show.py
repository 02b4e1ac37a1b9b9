"""The effective configuration as rows of (key, value, source), secrets masked.

Used by ``workflow-orchestrator config show`` and logged (at DEBUG) on startup.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import attrs

from workflow_orchestrator.config._convert import camel_case
from workflow_orchestrator.config._database_url import mask_url
from workflow_orchestrator.config._loader import LoadedConfig

__all__ = ["MASK", "effective_rows", "effective_tree"]

MASK = "******"


def _masked(value: Any, field: attrs.Attribute[Any]) -> Any:
    if field.metadata.get("secret"):
        return MASK if value else ""
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def _walk(obj: Any, prefix: str) -> typing.Iterator[tuple[str, Any]]:
    for field in attrs.fields(type(obj)):
        key = f"{prefix}.{camel_case(field.name)}" if prefix else camel_case(field.name)
        value = getattr(obj, field.name)
        if attrs.has(type(value)):
            yield from _walk(value, key)
        elif isinstance(value, tuple) and value and attrs.has(type(value[0])):
            for i, item in enumerate(value):
                yield from _walk(item, f"{key}[{i}]")
        else:
            yield key, _masked(list(value) if isinstance(value, tuple) else value, field)


def effective_rows(loaded: LoadedConfig) -> list[tuple[str, str, str]]:
    """``(key, value as JSON, source)`` for every setting, in declaration order."""
    return [
        (key, json.dumps(value), loaded.source_of(key)) for key, value in _walk(loaded.settings, "")
    ]


def _tree(obj: Any) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if attrs.has(type(value)):
            tree[camel_case(field.name)] = _tree(value)
        elif isinstance(value, tuple):
            tree[camel_case(field.name)] = [
                _tree(item) if attrs.has(type(item)) else _masked(item, field) for item in value
            ]
        else:
            tree[camel_case(field.name)] = _masked(value, field)
    return tree


def effective_tree(loaded: LoadedConfig) -> dict[str, Any]:
    """The settings as a nested camelCase mapping (secrets masked), as YAML would write them."""
    return _tree(loaded.settings)
