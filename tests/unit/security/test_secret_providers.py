"""The ``env`` and ``files`` secrets providers and the store that consults them in order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.secret_volume import kubernetes_secret_volume
from workflow_orchestrator.config import FileSecretsSettings, SecretsSettings, VaultSettings
from workflow_orchestrator.security import (
    EnvironmentSecrets,
    FileSecrets,
    SecretNotDefined,
    SecretProviderError,
    SecretStore,
)


async def test_environment_secrets_are_json_when_they_parse() -> None:
    """WORKFLOW_SECRET_<NAME> (non-alphanumerics as _) is JSON when it parses, else text."""
    provider = EnvironmentSecrets(
        environ={"WORKFLOW_SECRET_API_KEY": '{"token": "t"}', "WORKFLOW_SECRET_PLAIN": "x y"}
    )
    assert await provider.read("api-key") == {"token": "t"}
    assert await provider.read("plain") == "x y"
    assert await provider.read("other") is None
    assert provider.where("db.password") == "env WORKFLOW_SECRET_DB_PASSWORD"


async def test_files_follow_the_kubernetes_data_links(tmp_path: Path) -> None:
    """A mounted Secret's keys are read through its ..data links; one trailing newline is
    dropped; dot names and paths are never secrets."""
    root = kubernetes_secret_volume(
        tmp_path / "secrets", {"database-password": "pg-pass\n", "config": '{"a": 1}'}
    )
    provider = FileSecrets(directory=str(root))
    assert await provider.read("database-password") == "pg-pass"
    assert await provider.read("config") == {"a": 1}
    assert await provider.read("..data") is None
    assert await provider.read("../secrets/config") is None
    assert await provider.read("absent") is None


async def test_a_file_link_leading_outside_the_directory_is_no_secret(tmp_path: Path) -> None:
    """A link that resolves outside the directory is ignored (never read)."""
    (tmp_path / "outside").write_text("host file")
    root = tmp_path / "secrets"
    root.mkdir()
    os.symlink(tmp_path / "outside", root / "stolen")
    assert await FileSecrets(directory=str(root)).read("stolen") is None


async def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    """A file larger than security.secrets.files.maxSize is an error naming the setting."""
    (tmp_path / "big").write_text("x" * 100)
    with pytest.raises(SecretProviderError) as refused:
        await FileSecrets(directory=str(tmp_path), max_size=10).read("big")
    assert str(refused.value) == (
        f"secrets provider files: file {tmp_path}/big is larger than 10 bytes; raise "
        "security.secrets.files.maxSize if it is really a secret"
    )


async def test_the_store_consults_providers_in_order_and_skips_unconfigured(
    tmp_path: Path,
) -> None:
    """providers order decides; files without a directory and vault without an address are
    left out; a missing secret names every place looked in."""
    (tmp_path / "both").write_text("from-file")
    (tmp_path / "only-file").write_text("file-value")
    environ = {"WORKFLOW_SECRET_BOTH": "from-env"}
    files_first = SecretStore.from_settings(
        SecretsSettings(
            providers=("files", "env", "vault"),
            files=FileSecretsSettings(directory=str(tmp_path)),
        ),
        environ=environ,
    )
    assert [p.name for p in files_first.providers] == ["files", "env"]
    assert await files_first.read("both") == "from-file"
    assert await files_first.read("only-file") == "file-value"
    env_only = SecretStore.from_settings(
        SecretsSettings(vault=VaultSettings(address="")), environ=environ
    )
    assert await env_only.read("both") == "from-env"
    with pytest.raises(SecretNotDefined) as missing:
        await files_first.read("nowhere")
    assert str(missing.value) == (
        f"secret 'nowhere' is not defined; looked in: file {tmp_path}/nowhere, env "
        "WORKFLOW_SECRET_NOWHERE (security.secrets.providers lists where secrets come from)"
    )
