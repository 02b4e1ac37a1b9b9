"""Every route of both ports, for every role, inside and outside the caller's namespace, and
unauthenticated, against the real service: each answer is the expected 2xx, 401, 403 or 404.

Each role has one API key limited to the namespace ``shop``; ``billing`` is outside. An
unrestricted admin key (``root``) sets the scene: definitions and waiting instances in both
namespaces, fresh ones for every write that consumes them (delete, cancel, ...).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from tests.support.service import InProcessService, open_service
from tests.support.services import create_database, drop_database, url_for
from workflow_orchestrator.config import ConfigError
from workflow_orchestrator.errors import exception_leaves

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROLES = ("viewer", "operator", "developer", "publisher", "admin")
INSIDE, OUTSIDE = "shop", "billing"
KEYS = {role: f"{role}-key-{secrets.token_hex(12)}" for role in ROLES}
ROOT_KEY = f"root-key-{secrets.token_hex(12)}"
READERS = {"viewer", "operator", "developer", "admin"}


def definition(namespace: str, name: str) -> str:
    return f"""
document:
  dsl: '1.0.0'
  namespace: {namespace}
  name: {name}
  version: '1.0.0'
do:
  - hold:
      listen:
        to:
          one:
            with:
              type: matrix.never.{uuid.uuid4().hex}
"""


@pytest.fixture
async def app() -> AsyncIterator[InProcessService]:
    name = create_database("wo_access")
    try:
        api_keys = [
            {"name": role, "key": KEYS[role], "roles": [role], "namespaces": [INSIDE]}
            for role in ROLES
        ]
        api_keys.append({"name": "root", "key": ROOT_KEY, "roles": ["admin"]})
        async with open_service(
            url_for(name),
            settings={
                "security.authentication.enabled": True,
                "security.authentication.apiKeys": api_keys,
                "security.authentication.metrics": "authenticated",
                "security.authentication.healthDetails": "authenticated",
            },
        ) as service:
            yield service
    finally:
        drop_database(name)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def as_root(app: InProcessService, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**bearer(ROOT_KEY), **kwargs.pop("headers", {})}
    return await app.api.request(method, path, headers=headers, **kwargs)


async def new_definition(app: InProcessService, namespace: str, name: str) -> str:
    response = await as_root(
        app,
        "POST",
        "/v1/workflow-definitions",
        content=definition(namespace, name),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def new_instance(app: InProcessService, definition_id: str) -> str:
    response = await as_root(
        app, "POST", "/v1/workflow-instances", json={"workflowDefinitionId": definition_id}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def expected(role: str | None, *, needs: str, inside: bool = True, read: bool = False) -> int:
    """The status a caller gets: 401 unauthenticated, 403 wrong role, 404 a read outside its
    namespace, 403 a write outside it, else the route's success (0: any 2xx)."""
    if role is None:
        return 401
    allowed = {
        "read": READERS,
        "operate": {"operator", "admin"},
        "develop": {"developer", "admin"},
        "publish": {"publisher", "admin"},
        "admin": {"admin"},
        "authenticated": set(ROLES),
    }[needs]
    if role not in allowed:
        return 403
    if not inside:
        return 404 if read else 403
    return 0


def check(response: httpx.Response, want: int, what: str) -> None:
    if want == 0:
        assert 200 <= response.status_code < 300, f"{what}: {response.status_code} {response.text}"
    else:
        assert response.status_code == want, f"{what}: {response.status_code} {response.text}"
    if response.status_code in (401, 403, 404):
        assert response.headers["content-type"].startswith("application/problem+json"), what
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("Bearer"), what


async def test_every_route_for_every_role_and_namespace(app: InProcessService) -> None:
    callers: list[str | None] = [*ROLES, None]
    shared = {ns: await new_definition(app, ns, f"shared-{ns}") for ns in (INSIDE, OUTSIDE)}
    running = {ns: await new_instance(app, shared[ns]) for ns in (INSIDE, OUTSIDE)}
    management = app.management

    for role in callers:
        headers = bearer(KEYS[role]) if role else {}
        tag = role or "unauthenticated"

        async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            merged = {**headers, **kwargs.pop("headers", {})}  # noqa: B023
            return await app.api.request(method, path, headers=merged, **kwargs)

        # The OpenAPI document is open to everyone.
        check(await call("GET", "/openapi.json"), 0, f"{tag} openapi")

        for ns in (INSIDE, OUTSIDE):
            inside = ns == INSIDE
            where = f"{tag} in {ns}"
            definition_id = shared[ns]
            instance_id = running[ns]
            read = expected(role, needs="read", inside=inside, read=True)

            check(
                await call("GET", f"/v1/workflow-definitions/{definition_id}"),
                read,
                f"{where}: read definition",
            )
            check(
                await call("GET", f"/v1/workflow-definitions/{definition_id}/versions"),
                read,
                f"{where}: list versions",
            )
            check(
                await call("GET", f"/v1/workflow-definitions/{definition_id}/versions/1.0.0"),
                read,
                f"{where}: read version",
            )
            check(
                await call("GET", f"/v1/workflow-instances/{instance_id}"),
                read,
                f"{where}: read instance",
            )
            check(
                await call("GET", f"/v1/workflow-instances/{instance_id}/history"),
                read,
                f"{where}: instance history",
            )

            response = await call(
                "POST",
                "/v1/workflow-definitions",
                content=definition(ns, f"new-{tag}-{ns}"),
                headers={"Content-Type": "application/yaml"},
            )
            check(response, expected(role, needs="develop", inside=inside), f"{where}: register")

            doomed = await new_definition(app, ns, f"doomed-{tag}-{ns}")
            check(
                await call("DELETE", f"/v1/workflow-definitions/{doomed}"),
                expected(role, needs="develop", inside=inside),
                f"{where}: delete definition",
            )

            check(
                await call(
                    "POST", "/v1/workflow-instances", json={"workflowDefinitionId": definition_id}
                ),
                expected(role, needs="operate", inside=inside),
                f"{where}: start",
            )
            for command in ("suspend", "resume", "cancel"):
                target = await new_instance(app, definition_id)
                if command == "resume":
                    assert (
                        await as_root(app, "POST", f"/v1/workflow-instances/{target}/suspend")
                    ).is_success
                check(
                    await call("POST", f"/v1/workflow-instances/{target}/{command}", json={}),
                    expected(role, needs="operate", inside=inside),
                    f"{where}: {command}",
                )

        # Lists: filtered to the caller's namespace.
        for path in ("/v1/workflow-definitions", "/v1/workflow-instances"):
            response = await call("GET", path, params={"limit": 500})
            check(response, expected(role, needs="read"), f"{tag}: list {path}")
            if response.is_success:
                seen = {item["namespace"] for item in response.json()["items"]}
                assert seen == {INSIDE}, f"{tag}: {path} shows {seen}"

        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "tests/access",
            "type": "matrix.unrelated",
            "data": {},
        }
        check(
            await call(
                "POST",
                "/v1/events",
                json=event,
                headers={"Content-Type": "application/cloudevents+json"},
            ),
            expected(role, needs="publish"),
            f"{tag}: publish event",
        )
        check(
            await call("GET", "/v1/audit-log"), expected(role, needs="admin"), f"{tag}: audit log"
        )

        # The management port.
        for path in ("/health", "/health/live", "/health/ready"):
            check(await management.get(path, headers=headers), 0, f"{tag}: {path}")
        for path in ("/health/detailed", "/metrics"):
            check(
                await management.get(path, headers=headers),
                expected(role, needs="authenticated"),
                f"{tag}: {path}",
            )
        for path in ("/supervisor", "/supervisor/user"):
            check(
                await management.get(path, headers=headers),
                expected(role, needs="admin"),
                f"{tag}: {path}",
            )


async def test_a_wrong_or_malformed_credential_is_401(app: InProcessService) -> None:
    for header in (
        "Bearer not-a-key-of-this-service",
        f"Bearer {KEYS['admin']}x",
        f"Basic {KEYS['admin']}",
        "Bearer",
        "Bearer " + "x" * 10_000,
    ):
        response = await app.api.get("/v1/workflow-definitions", headers={"Authorization": header})
        assert response.status_code == 401, header[:40]
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert response.json()["type"].endswith("/unauthenticated")
        response = await app.management.get("/supervisor", headers={"Authorization": header})
        assert response.status_code == 401


async def test_changes_are_audited_and_only_admins_read_the_log(app: InProcessService) -> None:
    definition_id = await new_definition(app, INSIDE, "audited")
    refused = await app.api.post(
        "/v1/workflow-instances",
        json={"workflowDefinitionId": definition_id},
        headers=bearer(KEYS["viewer"]),
    )
    assert refused.status_code == 403
    started = await app.api.post(
        "/v1/workflow-instances",
        json={"workflowDefinitionId": definition_id},
        headers=bearer(KEYS["operator"]),
    )
    assert started.status_code == 201
    entries: list[dict[str, Any]] = []
    for _ in range(50):  # the rows are written in batches, a moment later
        page = await as_root(app, "GET", "/v1/audit-log", params={"limit": 50})
        assert page.status_code == 200
        entries = page.json()["items"]
        if sum(e["action"] == "instance.start" for e in entries) >= 2:
            break
        await trio.sleep(0.1)
    starts = [e for e in entries if e["action"] == "instance.start"]
    by_principal = {e["principal"]: e for e in starts}
    assert by_principal["viewer"]["outcome"] == "denied"
    assert by_principal["viewer"]["status"] == 403
    assert by_principal["operator"]["outcome"] == "succeeded"
    assert by_principal["operator"]["target"] == started.json()["id"]
    assert by_principal["operator"]["namespace"] == INSIDE
    registered = [e for e in entries if e["action"] == "definition.register"]
    assert registered and registered[0]["principal"] == "root"
    only_viewer = await as_root(app, "GET", "/v1/audit-log", params={"principal": "viewer"})
    assert {e["principal"] for e in only_viewer.json()["items"]} == {"viewer"}


async def test_undocumented_content_types_are_refused(app: InProcessService) -> None:
    root = bearer(ROOT_KEY)
    for path, body in (
        ("/v1/workflow-definitions", definition(INSIDE, "plain")),
        ("/v1/workflow-instances", '{"workflowDefinitionId": "x"}'),
        ("/v1/events", '{"specversion": "1.0"}'),
    ):
        for content_type in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ):
            response = await app.api.post(
                path, content=body, headers={**root, "Content-Type": content_type}
            )
            assert response.status_code == 415, (path, content_type, response.text)
            assert response.json()["type"].endswith("/unsupported-media-type")


async def test_only_allowed_host_names_are_answered() -> None:
    name = create_database("wo_hosts")
    try:
        async with open_service(
            url_for(name),
            settings={"server.allowedHosts": ["orchestrator.example.com", "*.internal.example"]},
        ) as app:
            for host, status in (
                ("orchestrator.example.com", 200),
                ("orchestrator.example.com:8080", 200),
                ("api.internal.example", 200),
                ("evil.example.net", 400),
                ("127.0.0.1", 400),
            ):
                response = await app.api.get("/v1/workflow-definitions", headers={"Host": host})
                assert response.status_code == status, (host, response.text)
                management = await app.management.get("/metrics", headers={"Host": host})
                assert management.status_code == status, host
                if status == 400:
                    assert response.json()["type"].endswith("/invalid-host")
                    assert "server.allowedHosts" in response.json()["detail"]
            # Probes address the pod by its IP: they are exempt.
            for path in ("/health", "/health/live", "/health/ready"):
                probe = await app.management.get(path, headers={"Host": "10.1.2.3:8081"})
                assert probe.status_code == 200, path
    finally:
        drop_database(name)


async def test_no_namespace_is_reached_through_global_ids(app: InProcessService) -> None:
    """Definition ids and idempotency keys are global: neither lets a namespaced caller reach
    another namespace (a takeover of an id, a replayed start, a listing in a 404)."""
    ops = {**bearer(KEYS["operator"]), "Content-Type": "application/json"}
    developer = {**bearer(KEYS["developer"]), "Content-Type": "application/yaml"}
    await new_definition(app, OUTSIDE, "payments")
    await new_definition(app, INSIDE, "cart")
    # A developer of shop cannot register a version of billing's id in shop.
    takeover = await app.api.post(
        "/v1/workflow-definitions", content=definition(INSIDE, "payments"), headers=developer
    )
    assert takeover.status_code == 403, takeover.text
    # An admin gets a 409 naming the namespace the id belongs to.
    conflict = await as_root(
        app,
        "POST",
        "/v1/workflow-definitions",
        content=definition(INSIDE, "payments"),
        headers={"Content-Type": "application/yaml"},
    )
    assert conflict.status_code == 409 and "belongs to namespace 'billing'" in conflict.text
    # A start replayed with another definition's key does not answer with that instance.
    first = await as_root(
        app,
        "POST",
        "/v1/workflow-instances",
        json={"workflowDefinitionId": "payments", "idempotencyKey": "order-42"},
    )
    assert first.status_code == 201
    replay = await app.api.post(
        "/v1/workflow-instances",
        json={"workflowDefinitionId": "cart", "idempotencyKey": "order-42"},
        headers=ops,
    )
    assert replay.status_code == 409, replay.text
    assert first.json()["id"] not in replay.text
    # A start of a definition outside names no other id.
    missing = await app.api.post(
        "/v1/workflow-instances", json={"workflowDefinitionId": "nope"}, headers=ops
    )
    assert missing.status_code == 404
    assert "payments" not in missing.text and "cart" not in missing.text


async def test_a_body_without_a_content_type_is_refused(app: InProcessService) -> None:
    root = bearer(ROOT_KEY)
    for path, body in (
        ("/v1/workflow-definitions", definition(INSIDE, "typeless").encode()),
        ("/v1/workflow-instances", b'{"workflowDefinitionId": "x"}'),
    ):
        response = await app.api.post(path, content=body, headers=root)
        assert "content-type" not in {k.lower() for k in response.request.headers}
        assert response.status_code == 415, (path, response.text)


async def test_without_authentication_on_loopback_only_local_names_are_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """make run's shape (authentication off, 127.0.0.1): a DNS-rebinding name is refused.
    With the audit table off, every change still has its (escaped) audit line."""
    name = create_database("wo_local_hosts")
    try:
        async with open_service(url_for(name), settings={"security.audit.enabled": False}) as app:
            for host, status in (
                ("127.0.0.1:8080", 200),
                ("localhost", 200),
                ("[::1]:8080", 200),
                ("attacker.example:8080", 400),
            ):
                response = await app.api.get("/v1/workflow-definitions", headers={"Host": host})
                assert response.status_code == status, host
            with caplog.at_level("INFO", logger="workflow_orchestrator.audit"):
                forged = "x%0Aaudit: root via api-key definition.delete y"
                await app.api.post(
                    f"/v1/workflow-instances/{forged}/cancel",
                    headers={"Content-Type": "application/json"},
                )
            assert (await app.api.get("/v1/audit-log")).status_code == 404  # no table
    finally:
        drop_database(name)
    lines = [r.getMessage() for r in caplog.records if r.name == "workflow_orchestrator.audit"]
    assert len(lines) == 1 and "\n" not in lines[0] and "\\n" in lines[0], lines


async def test_by_default_the_guides_monitoring_needs_no_credential() -> None:
    """With authentication on and the defaults, the guide's Prometheus job and its curl of
    /health/detailed work without a credential; /supervisor still needs an admin."""
    name = create_database("wo_open_metrics")
    try:
        async with open_service(
            url_for(name),
            settings={
                "security.authentication.enabled": True,
                "security.authentication.apiKeys": [
                    {"name": "root", "key": ROOT_KEY, "roles": ["admin"]}
                ],
            },
        ) as app:
            assert (await app.management.get("/metrics")).status_code == 200
            assert (await app.management.get("/health/detailed")).status_code == 200
            assert (await app.management.get("/supervisor")).status_code == 401
            assert (await app.api.get("/v1/workflow-definitions")).status_code == 401
    finally:
        drop_database(name)


async def test_an_api_key_may_come_from_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """``key: ${secret:NAME}`` authenticates with the secret's value, never with the reference
    itself; a secret too short to be a key stops startup naming the key."""
    value = f"from-the-vault-{secrets.token_hex(8)}"
    monkeypatch.setenv("WORKFLOW_SECRET_ADMIN_KEY", value)
    monkeypatch.setenv("WORKFLOW_SECRET_SHORT_KEY", "short")
    settings: dict[str, Any] = {
        "security.authentication.enabled": True,
        "security.secrets.providers": ["env"],
        "security.authentication.apiKeys": [
            {"name": "root", "key": "${secret:admin-key}", "roles": ["admin"]}
        ],
    }
    name = create_database("wo_key_secret")
    try:
        async with open_service(url_for(name), settings=settings) as app:
            for key, status in ((value, 200), ("${secret:admin-key}", 401)):
                response = await app.api.get("/v1/workflow-definitions", headers=bearer(key))
                assert response.status_code == status, key
        settings["security.authentication.apiKeys"] = [
            {"name": "root", "key": "${secret:short-key}", "roles": ["admin"]}
        ]
        with pytest.raises(ExceptionGroup) as stopped:
            async with open_service(url_for(name), settings=settings):
                pass
    finally:
        drop_database(name)
    [refused] = exception_leaves(stopped.value)
    assert isinstance(refused, ConfigError)
    assert [p.key for p in refused.problems] == ["security.authentication.apiKeys[0].key"]
    assert "fewer than 16 characters" in str(refused)
    assert "short" not in refused.problems[0].message  # the value is never shown
