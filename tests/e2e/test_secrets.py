"""Secrets through the whole service (issue 14): grants refuse at registration, a granted
secret comes from a mounted Secret directory and no stored row holds its value, and
``${secret:NAME}`` feeds ``database.password`` before the database is opened."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from tests.support.database import open_test_database
from tests.support.service import open_service, register_yaml
from workflow_orchestrator.config import ConfigError
from workflow_orchestrator.errors import exception_leaves

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PASSWORD = "billing-db-pa55word"
DEFINITIONS = "/v1/workflow-definitions"
INSTANCES = "/v1/workflow-instances"

SHOP = """\
document: {dsl: '1.0.3', namespace: shop, name: shop-reader, version: '1.0.0'}
use:
  secrets: [dbpass]
do:
  - read:
      set: {s: '${ $secrets.dbpass }'}
"""

BILLING = """\
document: {dsl: '1.0.3', namespace: billing, name: billing-reader, version: '1.0.0'}
use:
  secrets: [dbpass]
do:
  - read:
      set: {s: '${ $secrets.dbpass }', length: '${ $secrets.dbpass | length }'}
  - tell:
      emit:
        event:
          with: {source: "https://billing.example/pay", type: com.example.paid, data: {p: '${ $secrets.dbpass }'}}
"""


def mounted_secret(root: Path, values: dict[str, str]) -> Path:
    """A directory as the kubelet mounts a Secret (keys are links into ..data)."""
    copy = root / "..2026_12_03_10_00_00.000000001"
    copy.mkdir(parents=True)
    for name, value in values.items():
        (copy / name).write_text(value)
    os.symlink(copy.name, root / "..data")
    for name in values:
        os.symlink(f"..data/{name}", root / name)
    return root


def secret_settings(directory: Path) -> dict[str, object]:
    return {
        "security.secrets.providers": ["files"],
        "security.secrets.files.directory": str(directory),
        "security.secrets.grants": [{"namespace": "billing", "secrets": ["dbpass"]}],
        "database.password": "${secret:pgpass}",
    }


async def rows_holding(database_url: str, text: str) -> dict[str, int]:
    """For every table of the schema, how many rows hold ``text`` anywhere."""
    found: dict[str, int] = {}
    async with open_test_database(database_url, migrated=False) as database:
        tables = await database.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        for row in tables:
            name = row["table_name"]
            count = await database.fetchval(
                f'SELECT count(*) FROM "{name}" t WHERE t::text LIKE $1', f"%{text}%"
            )
            if count:
                found[name] = count
    return found


async def test_grants_refuse_and_a_granted_secret_is_stored_nowhere(
    database_url: str, tmp_path: Path
) -> None:
    """shop is refused dbpass (422 at /use/secrets/0); billing runs with it, and no table
    holds its value, while the redaction marker is what was stored."""
    directory = mounted_secret(tmp_path / "secrets", {"dbpass": PASSWORD, "pgpass": "pg"})
    with trio.fail_after(120):
        async with open_service(database_url, settings=secret_settings(directory)) as app:
            assert app.service.settings.database.password == "pg"
            refused = await app.api.post(
                DEFINITIONS, content=SHOP, headers={"Content-Type": "application/yaml"}
            )
            await register_yaml(app, BILLING)
            started = await app.api.post(INSTANCES, json={"workflowDefinitionId": "billing-reader"})
            instance_id = started.json()["id"]
            done = await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "30s"})
        stored = await rows_holding(database_url, PASSWORD)
        markers = await rows_holding(database_url, "[redacted secret dbpass]")
    assert refused.status_code == 422, refused.text
    assert refused.json()["problems"] == [
        {
            "pointer": "/use/secrets/0",
            "rule": "secret-not-granted",
            "message": "secret 'dbpass' is not granted to namespace 'shop'; grant it in "
            "security.secrets.grants (an entry with this namespace, or *, listing the secret), "
            "or remove it",
        }
    ]
    assert done.json()["status"] == "completed", done.text
    assert stored == {}
    assert "workflow_instances" in markers


async def test_a_missing_configuration_secret_stops_startup(
    database_url: str, tmp_path: Path
) -> None:
    """${secret:pgpass} that no provider holds: startup stops with the key named."""
    directory = mounted_secret(tmp_path / "secrets", {"dbpass": PASSWORD})
    with trio.fail_after(60), pytest.raises(ExceptionGroup) as stopped:
        async with open_service(database_url, settings=secret_settings(directory)):
            pass
    [invalid] = exception_leaves(stopped.value)
    assert isinstance(invalid, ConfigError)
    assert [str(problem) for problem in invalid.problems] == [
        f"test: database.password: secret 'pgpass' is not defined; looked in: file "
        f"{directory}/pgpass (security.secrets.providers lists where secrets come from)"
    ]
