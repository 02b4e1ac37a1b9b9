"""Secrets through the whole service (issue 14): grants refuse at registration, a granted
secret comes from a mounted Secret directory and no stored row holds its value, and
``${secret:NAME}`` feeds ``database.password`` before the database is opened."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.support.database import open_test_database
from tests.support.http_stub import run_http_stub
from tests.support.secret_volume import kubernetes_secret_volume
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
    directory = kubernetes_secret_volume(tmp_path / "secrets", {"dbpass": PASSWORD, "pgpass": "pg"})
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
    directory = kubernetes_secret_volume(tmp_path / "secrets", {"dbpass": PASSWORD})
    with trio.fail_after(60), pytest.raises(ExceptionGroup) as stopped:
        async with open_service(database_url, settings=secret_settings(directory)):
            pass
    [invalid] = exception_leaves(stopped.value)
    assert isinstance(invalid, ConfigError)
    assert [str(problem) for problem in invalid.problems] == [
        f"test: database.password: secret 'pgpass' is not defined; looked in: file "
        f"{directory}/pgpass (security.secrets.providers lists where secrets come from)"
    ]


APIKEY = "AbCd+EfGh/IjKl=="
CREDS = '{"username": "svc-user", "password": "hunter2hunter2"}'
BASIC = "c3ZjLXVzZXI6aHVudGVyMmh1bnRlcjI="  # base64 of svc-user:hunter2hunter2


def derived_definitions(port: int) -> dict[str, str]:
    """Definitions that pass secrets through a basic header, a query and a correlation."""
    return {
        "via-basic": f"""
document: {{dsl: '1.0.0', namespace: billing, name: via-basic, version: '1.0.0'}}
use: {{secrets: [creds]}}
do:
  - call:
      call: http
      with:
        method: get
        endpoint:
          uri: http://127.0.0.1:{port}/ok
          authentication:
            basic:
              use: creds
      output:
        as: '${{ {{p: $authorization.parameter}} }}'
""",
        "via-query": f"""
document: {{dsl: '1.0.0', namespace: billing, name: via-query, version: '1.0.0'}}
use: {{secrets: [apikey]}}
do:
  - call:
      call: http
      with:
        method: get
        endpoint: http://127.0.0.1:{port}/echo
        query:
          api_key: ${{ $secrets.apikey }}
""",
        "via-correlation": """
document: {dsl: '1.0.0', namespace: billing, name: via-correlation, version: '1.0.0'}
use: {secrets: [apikey]}
do:
  - hold:
      listen:
        to:
          one:
            with: {type: some.type}
            correlate:
              k:
                from: ${ .data.k }
                expect: ${ $secrets.apikey }
""",
    }


async def test_values_derived_from_secrets_are_stored_nowhere(
    database_url: str, tmp_path: Path
) -> None:
    """A basic header built from a secret, a secret sent percent-encoded in a query, and a
    correlation on a secret: none of the values reaches a stored row (the correlation faults
    the task, naming why). The stub echoes the path it was asked, query included."""
    directory = kubernetes_secret_volume(tmp_path / "secrets", {"apikey": APIKEY, "creds": CREDS})
    settings = {
        "security.secrets.providers": ["files"],
        "security.secrets.files.directory": str(directory),
        "security.secrets.grants": [{"namespace": "billing", "secrets": ["apikey", "creds"]}],
    }
    with trio.fail_after(120):
        with run_http_stub(delay=(0, 0)) as stub:
            async with open_service(database_url, settings=settings) as app:
                ended = {}
                port = int(stub.url.rsplit(":", 1)[1])
                for name, text in derived_definitions(port).items():
                    await register_yaml(app, text)
                    started = await app.api.post(INSTANCES, json={"workflowDefinitionId": name})
                    done = await app.api.get(
                        f"{INSTANCES}/{started.json()['id']}", params={"wait": "30s"}
                    )
                    ended[name] = done.json()
        stored = {
            text: await rows_holding(database_url, text)
            for text in (APIKEY, "AbCd%2BEfGh%2FIjKl%3D%3D", "hunter2hunter2", BASIC)
        }
    assert ended["via-basic"]["status"] == "completed", ended["via-basic"]
    assert ended["via-basic"]["output"] == {"p": "[redacted secret authorization]"}
    assert ended["via-query"]["status"] == "completed", ended["via-query"]
    assert ended["via-query"]["output"]["endpoint"] == "/echo?api_key=[redacted secret apikey]"
    assert ended["via-correlation"]["status"] == "faulted"
    assert "correlates or filters on the value of a secret" in str(
        ended["via-correlation"]["error"]
    )
    assert stored == {text: {} for text in stored}
