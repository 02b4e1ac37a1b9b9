"""Security: principals and roles, API keys and OIDC tokens, secrets and the outbound policy.

``docs/security.md`` describes the model; the gateway asks `Authenticator` who is calling and
checks the `Principal`'s permissions and namespaces before a route runs. A bearer credential
that `looks_like_jwt` goes to the `OidcVerifier`, any other to the `ApiKeys`.
"""

from workflow_orchestrator.security._api_keys import ApiKeys, key_digest
from workflow_orchestrator.security._authenticator import Authenticator, TokenVerifier
from workflow_orchestrator.security._claims import looks_like_jwt
from workflow_orchestrator.security._errors import (
    Forbidden,
    InvalidToken,
    TokenKeysUnavailable,
    Unauthenticated,
)
from workflow_orchestrator.security._jwks_cache import JwksStatistics
from workflow_orchestrator.security._outbound import (
    IPAddress,
    OutboundPolicy,
    OutboundRefusal,
    OutboundRefused,
    is_address_of_this_machine,
    normalize_address,
)
from workflow_orchestrator.security._principal import (
    ANONYMOUS,
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    namespaces_from,
)
from workflow_orchestrator.security._tokens import OidcVerifier, open_oidc_verifier

__all__ = [
    "ANONYMOUS",
    "ROLE_PERMISSIONS",
    "ApiKeys",
    "Authenticator",
    "Forbidden",
    "IPAddress",
    "InvalidToken",
    "JwksStatistics",
    "OidcVerifier",
    "OutboundPolicy",
    "OutboundRefusal",
    "OutboundRefused",
    "Permission",
    "Principal",
    "TokenKeysUnavailable",
    "TokenVerifier",
    "Unauthenticated",
    "is_address_of_this_machine",
    "key_digest",
    "looks_like_jwt",
    "namespaces_from",
    "normalize_address",
    "open_oidc_verifier",
]
