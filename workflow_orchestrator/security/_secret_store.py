"""Where secret values come from: the providers of ``security.secrets.providers``, in order.

The first provider that holds a secret gives its value; a provider that is not configured (no
``files.directory``, no ``vault.address``) is left out. `SecretStore` reads values only; who may
read which secret is `NamespacePolicy`'s (``security.secrets.grants``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from workflow_orchestrator.config import SecretsSettings
from workflow_orchestrator.security._secret_errors import SecretNotDefined
from workflow_orchestrator.security._secrets_env import EnvironmentSecrets
from workflow_orchestrator.security._secrets_files import FileSecrets
from workflow_orchestrator.security._vault import VaultSecrets

__all__ = ["SecretProvider", "SecretStore"]


class SecretProvider(Protocol):
    """One source of secrets: ``read`` returns the value, or None when it has no such secret
    (``SecretProviderError`` when it cannot tell); ``where`` says where it looked."""

    @property
    def name(self) -> str: ...

    def where(self, name: str) -> str: ...

    async def read(self, name: str) -> Any: ...

    def close(self) -> None: ...


@attrs.frozen(kw_only=True)
class SecretStore:
    """The configured providers, consulted in order (see the module docstring)."""

    providers: tuple[SecretProvider, ...] = attrs.field(factory=lambda: (EnvironmentSecrets(),))

    @classmethod
    def from_settings(
        cls, settings: SecretsSettings, environ: Mapping[str, str] | None = None
    ) -> SecretStore:
        """The providers ``settings`` configures, in ``providers`` order (each once)."""
        providers: list[SecretProvider] = []
        for kind in dict.fromkeys(settings.providers):
            if kind == "env":
                providers.append(EnvironmentSecrets(environ=environ or os.environ))
            elif kind == "files" and settings.files.directory:
                providers.append(
                    FileSecrets(
                        directory=settings.files.directory, max_size=settings.files.max_size
                    )
                )
            elif kind == "vault" and settings.vault.address:
                providers.append(VaultSecrets(settings.vault))
        return cls(providers=tuple(providers))

    async def read(self, name: str) -> Any:
        """The value of secret ``name`` from the first provider that holds it.

        Raises ``SecretNotDefined`` (naming every place looked in) when none does, and
        ``SecretProviderError`` when a provider before the one holding it fails.
        """
        for provider in self.providers:
            value = await provider.read(name)
            if value is not None:
                return value
        raise SecretNotDefined(name, tuple(p.where(name) for p in self.providers))

    def close(self) -> None:
        """Release the providers' connections (Vault's HTTP session)."""
        for provider in self.providers:
            provider.close()
