"""The refusals of the security layer."""

from __future__ import annotations

from workflow_orchestrator.errors import OrchestratorError

__all__ = ["Forbidden", "InvalidToken", "TokenKeysUnavailable", "Unauthenticated"]


class Unauthenticated(OrchestratorError):
    """No credential, or one that is not valid (a 401): the message says which."""


class Forbidden(OrchestratorError):
    """A valid principal without the role or namespace (a 403)."""


class InvalidToken(Unauthenticated):
    """A bearer token (JWT) that is refused (a 401).

    ``reason`` is a stable short code (``expired``, ``not-yet-valid``, ``wrong-audience``,
    ``wrong-issuer``, ``unknown-key``, ``bad-signature``, ``algorithm-not-allowed``,
    ``missing-claim``, ``malformed``) for logs and metrics; the message is a short sentence safe
    to show the client: it never repeats the token's own text or the service's settings.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenKeysUnavailable(OrchestratorError):
    """The issuer's signing keys (JWKS) cannot be fetched and none are cached (a 503).

    Not the client's fault: the token may be fine. ``jwks_url`` is the URL tried (without
    query or credentials) and ``reason`` what went wrong.
    """

    def __init__(self, jwks_url: str, reason: str) -> None:
        super().__init__(
            f"the token issuer's signing keys cannot be fetched from {jwks_url}: {reason}; "
            "check security.authentication.oidc.jwksUrl and that the issuer is reachable"
        )
        self.jwks_url = jwks_url
        self.reason = reason
