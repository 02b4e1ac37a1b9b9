"""The ``vault`` secrets provider against a local fake Vault (real sockets, hvac's own HTTP):
KV v2 reads, token, AppRole and Kubernetes logins, token renewal, refusals and the cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.support.fake_vault import FakeVault, ManualClock, serve_fake_vault
from workflow_orchestrator.config import VaultAuthSettings, VaultSettings
from workflow_orchestrator.security import SecretProviderError, VaultSecrets

pytestmark = pytest.mark.integration

KV_READ = "GET /v1/secret/data/workflow-orchestrator/prod"
RENEW = "POST /v1/auth/token/renew-self"
APPROLE_LOGIN = "POST /v1/auth/approle/login"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def vault(clock: ManualClock) -> Iterator[FakeVault]:
    fake = FakeVault(clock=clock)
    # As the guide stores them: vault kv put secret/workflow-orchestrator/prod ...
    fake.kv["secret/workflow-orchestrator/prod"] = {
        "database-password": "pg-s3cret",
        "kafka-password": "kafka-s3cret",
    }
    with serve_fake_vault(fake):
        yield fake


def provider(
    vault: FakeVault, clock: ManualClock, *, cache_ttl: float = 300.0, **auth: str
) -> VaultSecrets:
    settings = VaultSettings(
        address=vault.url,
        path="workflow-orchestrator/prod",
        auth=VaultAuthSettings(**auth),  # type: ignore[arg-type]
        cache_ttl=cache_ttl,
        timeout=5.0,
    )
    return VaultSecrets(settings, clock=clock)


async def test_token_reads_each_key_of_the_kv2_secret(vault: FakeVault, clock: ManualClock) -> None:
    """With VAULT_TOKEN's token, each key of the secret is a secret; an absent key is None;
    the secret is read once while cached."""
    vault.add_token("root-token")
    secrets = provider(vault, clock, token="root-token")
    with trio.fail_after(20):
        assert await secrets.read("database-password") == "pg-s3cret"
        assert await secrets.read("kafka-password") == "kafka-s3cret"
        assert await secrets.read("missing") is None
    secrets.close()
    assert vault.count(KV_READ) == 1
    assert vault.count("GET /v1/auth/token/lookup-self") == 1


async def test_a_wrong_token_is_a_clear_error(vault: FakeVault, clock: ManualClock) -> None:
    """A token Vault refuses names the setting (and VAULT_TOKEN) to fix."""
    vault.add_token("root-token")
    secrets = provider(vault, clock, token="not-the-token")
    with trio.fail_after(20), pytest.raises(SecretProviderError) as refused:
        await secrets.read("database-password")
    secrets.close()
    assert str(refused.value) == (
        f"secrets provider vault: vault at {vault.url} refused the token (permission denied); "
        "set a valid token in security.secrets.vault.auth.token (VAULT_TOKEN)"
    )


async def test_no_token_names_the_setting(vault: FakeVault, clock: ManualClock) -> None:
    """The token method without a token says where to set one."""
    secrets = provider(vault, clock)
    with trio.fail_after(20), pytest.raises(SecretProviderError, match="VAULT_TOKEN"):
        await secrets.read("database-password")
    secrets.close()
    assert vault.calls == []


async def test_the_cache_expires_and_a_changed_value_is_read(
    vault: FakeVault, clock: ManualClock
) -> None:
    """Within cacheTtl the cached value is returned; after it, the changed value."""
    vault.add_token("root-token")
    secrets = provider(vault, clock, cache_ttl=60.0, token="root-token")
    with trio.fail_after(20):
        assert await secrets.read("database-password") == "pg-s3cret"
        vault.kv["secret/workflow-orchestrator/prod"]["database-password"] = "rotated"
        clock.advance(59)
        assert await secrets.read("database-password") == "pg-s3cret"
        clock.advance(2)
        assert await secrets.read("database-password") == "rotated"
    secrets.close()
    assert vault.count(KV_READ) == 2


async def test_a_token_is_renewed_before_it_expires(vault: FakeVault, clock: ManualClock) -> None:
    """A renewable token is renewed (renew-self) once two thirds of its TTL passed, and stays
    valid past its first expiry."""
    vault.add_token("periodic", ttl=30, renewable=True)
    secrets = provider(vault, clock, cache_ttl=0.0, token="periodic")
    with trio.fail_after(20):
        assert await secrets.read("database-password") == "pg-s3cret"
        clock.advance(21)
        assert await secrets.read("database-password") == "pg-s3cret"
        assert vault.count(RENEW) == 1
        clock.advance(21)  # 42s after the start: alive only thanks to the renewal
        assert await secrets.read("database-password") == "pg-s3cret"
    secrets.close()
    assert vault.count(RENEW) == 2


async def test_approle_logs_in_and_again_when_renewal_fails(
    vault: FakeVault, clock: ManualClock
) -> None:
    """AppRole logs in with role and secret ids; when renew-self is refused the provider
    logs in again instead of failing."""
    vault.approles["role-1"] = "secret-1"
    secrets = provider(
        vault, clock, cache_ttl=0.0, method="approle", role_id="role-1", secret_id="secret-1"
    )
    with trio.fail_after(20):
        assert await secrets.read("kafka-password") == "kafka-s3cret"
        assert vault.count(APPROLE_LOGIN) == 1
        vault.renewals_refused = True
        clock.advance(45)
        assert await secrets.read("kafka-password") == "kafka-s3cret"
    secrets.close()
    assert vault.count(RENEW) == 1
    assert vault.count(APPROLE_LOGIN) == 2


async def test_approle_with_a_wrong_secret_id_is_refused(
    vault: FakeVault, clock: ManualClock
) -> None:
    """A refused AppRole login says so and names the settings to check."""
    vault.approles["role-1"] = "secret-1"
    secrets = provider(vault, clock, method="approle", role_id="role-1", secret_id="wrong")
    with trio.fail_after(20), pytest.raises(SecretProviderError) as refused:
        await secrets.read("kafka-password")
    secrets.close()
    assert str(refused.value) == (
        "secrets provider vault: vault refused the approle login (invalid role or secret ID); "
        "check security.secrets.vault.auth"
    )


async def test_kubernetes_login_with_the_service_account_token(
    vault: FakeVault, clock: ManualClock, tmp_path: Path
) -> None:
    """Kubernetes auth posts the role and the pod's service account token (read from its
    file at each login)."""
    token_file = tmp_path / "token"
    token_file.write_text("jwt-of-the-pod\n")
    vault.kubernetes_roles["workflow-orchestrator"] = "jwt-of-the-pod"
    secrets = provider(
        vault,
        clock,
        method="kubernetes",
        role="workflow-orchestrator",
        service_account_token_path=str(token_file),
    )
    with trio.fail_after(20):
        assert await secrets.read("database-password") == "pg-s3cret"
    secrets.close()
    assert vault.count("POST /v1/auth/kubernetes/login") == 1


async def test_an_unreachable_vault_names_the_address(clock: ManualClock) -> None:
    """Nothing listening at the address: an error naming VAULT_ADDR's setting."""
    settings = VaultSettings(
        address="http://127.0.0.1:9", auth=VaultAuthSettings(token="t"), timeout=2.0
    )
    secrets = VaultSecrets(settings, clock=clock)
    with trio.fail_after(20), pytest.raises(SecretProviderError) as unreachable:
        await secrets.read("database-password")
    secrets.close()
    assert str(unreachable.value) == (
        "secrets provider vault: cannot reach vault at http://127.0.0.1:9 (ConnectionError); "
        "check security.secrets.vault.address (VAULT_ADDR)"
    )
