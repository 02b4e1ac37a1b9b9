"""Security: principals and roles, API keys and OIDC tokens, secrets and the outbound policy.

``docs/security.md`` describes the model; the gateway asks `Authenticator` who is calling and
checks the `Principal`'s permissions and namespaces before a route runs.
"""

from workflow_orchestrator.security._api_keys import ApiKeys, key_digest
from workflow_orchestrator.security._errors import Forbidden, Unauthenticated
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

__all__ = [
    "ANONYMOUS",
    "ROLE_PERMISSIONS",
    "ApiKeys",
    "Forbidden",
    "IPAddress",
    "OutboundPolicy",
    "OutboundRefusal",
    "OutboundRefused",
    "Permission",
    "Principal",
    "Unauthenticated",
    "is_address_of_this_machine",
    "key_digest",
    "namespaces_from",
    "normalize_address",
]
