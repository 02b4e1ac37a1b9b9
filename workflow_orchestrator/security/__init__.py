"""Security: principals and roles, API keys and OIDC tokens, secrets and the outbound policy.

``docs/security.md`` describes the model; the gateway asks `Authenticator` who is calling and
checks the `Principal`'s permissions and namespaces before a route runs.
"""

from workflow_orchestrator.security._api_keys import ApiKeys, key_digest
from workflow_orchestrator.security._authenticator import (
    Authenticator,
    TokenVerifier,
    looks_like_token,
)
from workflow_orchestrator.security._errors import Forbidden, Unauthenticated
from workflow_orchestrator.security._principal import (
    ANONYMOUS,
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    namespaces_from,
)

__all__ = [
    "ANONYMOUS",
    "ROLE_PERMISSIONS",
    "ApiKeys",
    "Authenticator",
    "Forbidden",
    "Permission",
    "Principal",
    "TokenVerifier",
    "Unauthenticated",
    "key_digest",
    "looks_like_token",
    "namespaces_from",
]
