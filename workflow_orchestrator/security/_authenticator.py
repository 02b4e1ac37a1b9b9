"""Who is calling: the ``Authorization: Bearer <credential>`` header of a request.

The credential is an API key (``security.authentication.apiKeys``) or, when OIDC is on, a JWT
signed by the issuer (a `TokenVerifier`). With authentication off every caller is `ANONYMOUS`
(all permissions): the development profiles bind 127.0.0.1 for that reason.
"""

from __future__ import annotations

from typing import Protocol

from workflow_orchestrator.security._api_keys import ApiKeys
from workflow_orchestrator.security._claims import looks_like_jwt
from workflow_orchestrator.security._errors import Unauthenticated
from workflow_orchestrator.security._principal import ANONYMOUS, Principal

__all__ = ["Authenticator", "TokenVerifier"]

# Longer credentials are refused before any work (a header is at most a few KB anyway).
MAX_CREDENTIAL_LENGTH = 8192


class TokenVerifier(Protocol):
    """Checks a bearer token (a JWT) and returns its principal, or raises `Unauthenticated`."""

    async def verify(self, token: str) -> Principal: ...


class Authenticator:
    """Turns an ``Authorization`` header into a `Principal`."""

    def __init__(
        self, *, enabled: bool, api_keys: ApiKeys, tokens: TokenVerifier | None = None
    ) -> None:
        self.enabled = enabled
        self._api_keys = api_keys
        self._tokens = tokens

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller's principal; raise `Unauthenticated` (a 401) saying what is wrong."""
        if not self.enabled:
            return ANONYMOUS
        if not authorization or not authorization.strip():
            raise Unauthenticated(
                "this endpoint needs a credential; send 'Authorization: Bearer <API key or token>'"
            )
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated("the Authorization header must be 'Bearer <API key or token>'")
        if len(credential) > MAX_CREDENTIAL_LENGTH:
            raise Unauthenticated("the credential is not valid")
        if self._tokens is not None and looks_like_jwt(credential):
            return await self._tokens.verify(credential)
        principal = self._api_keys.find(credential)
        if principal is None:
            raise Unauthenticated("the credential is not valid")
        return principal
