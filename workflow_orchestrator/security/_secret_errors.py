"""The refusals and failures of ``$secrets`` and ``${secret:NAME}``: each names what to fix."""

from __future__ import annotations

from workflow_orchestrator.errors import OrchestratorError

__all__ = ["SecretError", "SecretNotDefined", "SecretNotGranted", "SecretProviderError"]


class SecretError(OrchestratorError):
    """A secret could not be read; the message says why and which setting to change."""


class SecretNotDefined(SecretError, LookupError):
    """No configured provider holds the secret; ``tried`` lists where it was looked for."""

    def __init__(self, name: str, tried: tuple[str, ...]) -> None:
        where = ", ".join(tried) if tried else "no provider is configured"
        super().__init__(
            f"secret {name!r} is not defined; looked in: {where} "
            "(security.secrets.providers lists where secrets come from)"
        )
        self.name = name
        self.tried = tried


class SecretNotGranted(SecretError, PermissionError):
    """The namespace is not granted the secret (``security.secrets.grants``)."""

    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(
            f"secret {name!r} is not granted to namespace {namespace!r}; grant it in "
            "security.secrets.grants"
        )
        self.name = name
        self.namespace = namespace


class SecretProviderError(SecretError):
    """A provider failed (Vault unreachable or refusing the login, a file too large...)."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"secrets provider {provider}: {message}")
        self.provider = provider
