"""``${secret:NAME}`` in configuration values, resolved from the providers at startup."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import ConfigError, effective_rows, load_config
from workflow_orchestrator.security import SecretStore, resolve_config_secrets


async def test_database_and_broker_credentials_come_from_the_providers(tmp_path: Path) -> None:
    """database.username/password and the RabbitMQ URL take the secrets' values; the loaded
    configuration (and config show) keeps the reference masked."""
    (tmp_path / "database-password").write_text("pg-pass\n")
    (tmp_path / "mq-password").write_text("mq-pass")
    loaded = load_config(
        environ={},
        overrides={
            "database.username": ("test", "${secret:database-user}"),
            "database.password": ("test", "${secret:database-password}"),
            "eventProcessing.rabbitmq.url": ("test", "amqp://wo:${secret:mq-password}@mq:5672/"),
            "security.secrets.files.directory": ("test", str(tmp_path)),
        },
        cwd=tmp_path,
    )
    store = SecretStore.from_settings(
        loaded.settings.security.secrets, environ={"WORKFLOW_SECRET_DATABASE_USER": "wo"}
    )
    resolved = await resolve_config_secrets(loaded, store)
    assert resolved.settings.database.username == "wo"
    assert resolved.settings.database.password == "pg-pass"
    assert resolved.settings.event_processing.rabbitmq.url == "amqp://wo:mq-pass@mq:5672/"
    assert loaded.settings.database.password == "${secret:database-password}"
    shown = {key: value for key, value, _ in effective_rows(loaded)}
    assert "******" in shown["database.password"]
    assert "mq-pass" not in str(shown)


async def test_a_missing_secret_stops_startup_naming_the_key(tmp_path: Path) -> None:
    """An unresolved reference is a ConfigError naming the key and where it was looked for."""
    loaded = load_config(
        environ={},
        overrides={"database.password": ("test", "${secret:nowhere}")},
        cwd=tmp_path,
    )
    store = SecretStore.from_settings(loaded.settings.security.secrets, environ={})
    with pytest.raises(ConfigError) as invalid:
        await resolve_config_secrets(loaded, store)
    assert str(invalid.value) == (
        "invalid configuration (1 problem):\n  - test: database.password: secret 'nowhere' is "
        "not defined; looked in: env WORKFLOW_SECRET_NOWHERE (security.secrets.providers lists "
        "where secrets come from)"
    )


async def test_without_references_the_configuration_is_returned_as_is(tmp_path: Path) -> None:
    """No ${secret:...} anywhere: no provider is asked and the same object comes back."""
    loaded = load_config(environ={}, overrides={}, cwd=tmp_path)
    assert await resolve_config_secrets(loaded, SecretStore(providers=())) is loaded
