"""``${secret:NAME}`` in configuration values, resolved from the secrets providers at startup.

``database.password: ${secret:database-password}`` (or ``DATABASE_PASSWORD=${secret:...}``)
takes the value from the providers of ``security.secrets`` before the database is opened, so
the database and broker credentials can come from Vault or a mounted Secret. Every text
setting may hold references, except those of ``security.secrets`` itself (they say where
secrets come from). A reference no provider resolves stops startup with a ``ConfigError``
naming the key and where the secret was looked for; the configuration as loaded (and ``config
show``) keeps the reference, never the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.config import ConfigError, ConfigProblem, LoadedConfig
from workflow_orchestrator.security._secret_errors import SecretError
from workflow_orchestrator.security._secret_store import SecretStore

__all__ = ["SECRET_REFERENCE", "resolve_config_secrets"]

SECRET_REFERENCE = re.compile(r"\$\{secret:([A-Za-z0-9_.-]{1,200})\}")
_NOT_RESOLVED = frozenset({"security.secrets"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _references(value: Any, key: str) -> list[tuple[str, str]]:
    """Every ``(key, secret name)`` in the settings tree under ``key``."""
    if key in _NOT_RESOLVED:
        return []
    if isinstance(value, str):
        return [(key, name) for name in SECRET_REFERENCE.findall(value)]
    if isinstance(value, tuple):
        return [ref for i, item in enumerate(value) for ref in _references(item, f"{key}[{i}]")]
    if attrs.has(type(value)):
        found: list[tuple[str, str]] = []
        for field in attrs.fields(type(value)):
            child = f"{key}.{_camel(field.name)}" if key else _camel(field.name)
            found.extend(_references(getattr(value, field.name), child))
        return found
    return []


def _replaced(value: Any, key: str, values: Mapping[str, str]) -> Any:
    if key in _NOT_RESOLVED:
        return value
    if isinstance(value, str):
        if "${secret:" not in value:
            return value
        return SECRET_REFERENCE.sub(lambda match: values[match.group(1)], value)
    if isinstance(value, tuple):
        return tuple(_replaced(item, f"{key}[{i}]", values) for i, item in enumerate(value))
    if attrs.has(type(value)):
        changes = {}
        for field in attrs.fields(type(value)):
            child = f"{key}.{_camel(field.name)}" if key else _camel(field.name)
            before = getattr(value, field.name)
            after = _replaced(before, child, values)
            if after is not before:
                changes[field.alias or field.name] = after
        return attrs.evolve(value, **changes) if changes else value
    return value


async def resolve_config_secrets(loaded: LoadedConfig, store: SecretStore) -> LoadedConfig:
    """``loaded`` with every ``${secret:NAME}`` replaced by the secret's value (as text; an
    object secret as JSON); ``loaded`` itself when there is none. Raises ``ConfigError`` listing
    every reference that cannot be resolved."""
    references = _references(loaded.settings, "")
    if not references:
        return loaded
    values: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for key, name in references:
        if name in values:
            continue
        try:
            value = await store.read(name)
        except SecretError as error:
            problems.append(
                ConfigProblem(source=loaded.source_of(key), key=key, message=str(error))
            )
            continue
        values[name] = value if isinstance(value, str) else _json(value)
    if problems:
        raise ConfigError(problems)
    return attrs.evolve(loaded, settings=_replaced(loaded.settings, "", values))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
