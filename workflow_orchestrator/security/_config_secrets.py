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
from collections.abc import Callable
from typing import Any

import attrs

from workflow_orchestrator.config import ConfigError, ConfigProblem, LoadedConfig, camel_case
from workflow_orchestrator.security._secret_errors import SecretError
from workflow_orchestrator.security._secret_store import SecretStore

__all__ = ["SECRET_REFERENCE", "resolve_config_secrets"]

SECRET_REFERENCE = re.compile(r"\$\{secret:([A-Za-z0-9_.-]{1,200})\}")
_NOT_RESOLVED = frozenset({"security.secrets"})


def _map_texts(value: Any, key: str, change: Callable[[str, str], str]) -> Any:
    """``value`` (a settings tree) with every text ``t`` at dotted ``key`` that holds a
    reference replaced by ``change(key, t)``; the same object where nothing changed."""
    if key in _NOT_RESOLVED:
        return value
    if isinstance(value, str):
        return change(key, value) if "${secret:" in value else value
    if isinstance(value, tuple):
        items = tuple(_map_texts(item, f"{key}[{i}]", change) for i, item in enumerate(value))
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if attrs.has(type(value)):
        changes = {}
        for field in attrs.fields(type(value)):
            child = f"{key}.{camel_case(field.name)}" if key else camel_case(field.name)
            before = getattr(value, field.name)
            after = _map_texts(before, child, change)
            if after is not before:
                changes[field.alias or field.name] = after
        return attrs.evolve(value, **changes) if changes else value
    return value


async def resolve_config_secrets(loaded: LoadedConfig, store: SecretStore) -> LoadedConfig:
    """``loaded`` with every ``${secret:NAME}`` replaced by the secret's value (as text; an
    object secret as JSON); ``loaded`` itself when there is none. Raises ``ConfigError`` listing
    every reference that cannot be resolved."""
    references: list[tuple[str, str]] = []

    def collect(key: str, text: str) -> str:
        references.extend((key, name) for name in SECRET_REFERENCE.findall(text))
        return text

    _map_texts(loaded.settings, "", collect)
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

    def resolve(_key: str, text: str) -> str:
        return SECRET_REFERENCE.sub(lambda match: values[match.group(1)], text)

    return attrs.evolve(loaded, settings=_map_texts(loaded.settings, "", resolve))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
