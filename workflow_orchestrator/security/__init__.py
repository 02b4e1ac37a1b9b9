"""Security: principals and roles, API keys and OIDC tokens, secrets and the outbound policy.

``docs/security.md`` describes the model; the gateway asks `Authenticator` who is calling and
checks the `Principal`'s permissions and namespaces before a route runs. A bearer credential
that `looks_like_jwt` goes to the `OidcVerifier`, any other to the `ApiKeys`. `SecretStore`
reads ``$secrets`` (and ``${secret:NAME}`` in the configuration) from the environment, files or
Vault; `NamespacePolicy` says which namespace may use which secret and run processes; a run's
`SecretRedactor` keeps the values it read out of what is stored. `OutboundPolicy` decides which
addresses the engine's calls may reach.
"""

from workflow_orchestrator.security._api_keys import ApiKeys, key_digest
from workflow_orchestrator.security._authenticator import Authenticator, TokenVerifier
from workflow_orchestrator.security._claims import looks_like_jwt
from workflow_orchestrator.security._config_secrets import resolve_config_secrets
from workflow_orchestrator.security._errors import (
    Forbidden,
    InvalidToken,
    TokenKeysUnavailable,
    Unauthenticated,
)
from workflow_orchestrator.security._jwks_cache import JwksStatistics
from workflow_orchestrator.security._namespace_policy import NamespacePolicy
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
from workflow_orchestrator.security._redaction import SecretRedactor, redaction_marker
from workflow_orchestrator.security._secret_errors import (
    SecretError,
    SecretNotDefined,
    SecretNotGranted,
    SecretProviderError,
)
from workflow_orchestrator.security._secret_store import SecretProvider, SecretStore
from workflow_orchestrator.security._secrets_env import (
    SECRET_PREFIX,
    EnvironmentSecrets,
    environment_variable,
)
from workflow_orchestrator.security._secrets_files import FileSecrets
from workflow_orchestrator.security._tokens import OidcVerifier, open_oidc_verifier
from workflow_orchestrator.security._vault import VaultSecrets

__all__ = [
    "ANONYMOUS",
    "ROLE_PERMISSIONS",
    "SECRET_PREFIX",
    "ApiKeys",
    "Authenticator",
    "EnvironmentSecrets",
    "FileSecrets",
    "Forbidden",
    "IPAddress",
    "InvalidToken",
    "JwksStatistics",
    "NamespacePolicy",
    "OidcVerifier",
    "OutboundPolicy",
    "OutboundRefusal",
    "OutboundRefused",
    "Permission",
    "Principal",
    "SecretError",
    "SecretNotDefined",
    "SecretNotGranted",
    "SecretProvider",
    "SecretProviderError",
    "SecretRedactor",
    "SecretStore",
    "TokenKeysUnavailable",
    "TokenVerifier",
    "Unauthenticated",
    "VaultSecrets",
    "environment_variable",
    "is_address_of_this_machine",
    "key_digest",
    "looks_like_jwt",
    "namespaces_from",
    "normalize_address",
    "open_oidc_verifier",
    "redaction_marker",
    "resolve_config_secrets",
]
