"""Typed settings of ``security``: who may call the service, TLS, secrets and outbound calls.

The shapes follow ``docs/security.md``; every class mirrors one mapping of ``application.yaml``
(camelCase keys, as in ``_settings``).
"""

from __future__ import annotations

import attrs

from workflow_orchestrator.config._meta import setting as _meta

__all__ = [
    "ROLES",
    "ApiKeySettings",
    "AuditSettings",
    "AuthenticationSettings",
    "FileSecretsSettings",
    "OidcSettings",
    "OutboundSettings",
    "SecretGrant",
    "SecretsSettings",
    "SecuritySettings",
    "TlsSettings",
    "VaultAuthSettings",
    "VaultSettings",
]

#: The roles a principal may hold (``docs/security.md`` lists what each may do).
ROLES = ("viewer", "operator", "developer", "publisher", "admin")
#: Who may read an optional management endpoint: anyone, any authenticated principal, admins.
ENDPOINT_ACCESS = ("open", "authenticated", "admin")
#: The signature algorithms a token may use (``security.authentication.oidc.algorithms``).
JWT_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@attrs.frozen(kw_only=True)
class ApiKeySettings:
    """One API key: sent as ``Authorization: Bearer <key>``.

    ``key`` is the key itself, or ``sha256:<64 hex digits>``, its SHA-256 hash. ``namespaces``
    empty (or holding ``*``) means every namespace.
    """

    name: str = attrs.field(default="", metadata=_meta(help="a name for the key's holder"))
    key: str = attrs.field(
        default="",
        metadata=_meta(secret=True, help="the key (at least 16 characters) or sha256:<hex>"),
    )
    roles: tuple[str, ...] = attrs.field(default=(), metadata=_meta(choices=ROLES))
    namespaces: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class OidcSettings:
    """OIDC/JWT bearer tokens, checked against the issuer's JSON Web Key Set.

    ``rolesClaim`` and ``namespacesClaim`` name the claims (a list, or a space-separated text;
    a dotted name such as ``realm_access.roles`` reaches into an object).
    """

    enabled: bool = False
    issuer: str = attrs.field(default="", metadata=_meta(help="the issuer URL (the iss claim)"))
    audience: str = attrs.field(default="", metadata=_meta(help="the audience (the aud claim)"))
    jwks_url: str = attrs.field(default="", metadata=_meta(help="the JWKS URL of the issuer"))
    # Asymmetric signatures only: never ``none``, never HMAC (a public key is no secret).
    algorithms: tuple[str, ...] = attrs.field(
        default=("RS256", "ES256", "PS256", "EdDSA"), metadata=_meta(choices=JWT_ALGORITHMS)
    )
    roles_claim: str = "roles"
    namespaces_claim: str = "namespaces"
    subject_claim: str = "sub"
    jwks_cache_ttl: float = attrs.field(
        default=300.0, metadata=_meta(kind="duration", minimum=1, help="a duration such as 5m")
    )
    # A token signed by a key not in the cached set refetches the set, at most this often.
    jwks_refresh_interval: float = attrs.field(
        default=30.0, metadata=_meta(kind="duration", minimum=0, help="a duration such as 30s")
    )
    leeway: float = attrs.field(
        default=30.0, metadata=_meta(kind="duration", minimum=0, help="a duration such as 30s")
    )


@attrs.frozen(kw_only=True)
class AuthenticationSettings:
    """Who is calling: API keys and OIDC tokens, on both ports."""

    enabled: bool = False
    api_keys: tuple[ApiKeySettings, ...] = ()
    oidc: OidcSettings = attrs.field(factory=OidcSettings)
    # The optional management endpoints (``/health/live`` and ``/health/ready`` stay open for
    # probes; ``/supervisor`` is for admins). Open by default, as the deployment guide's
    # Prometheus job and curl checks use them without credentials: the management port is
    # meant to stay internal (``server.managementHost``).
    metrics: str = attrs.field(default="open", metadata=_meta(choices=ENDPOINT_ACCESS))
    health_details: str = attrs.field(default="open", metadata=_meta(choices=ENDPOINT_ACCESS))


@attrs.frozen(kw_only=True)
class AuditSettings:
    """The audit log of every change (a table, readable by admins, and a log line)."""

    enabled: bool = True
    retention: float = attrs.field(
        default=90 * 86_400.0,
        metadata=_meta(kind="duration", minimum=0, help="a duration such as 90d (0s: for ever)"),
    )


@attrs.frozen(kw_only=True)
class TlsSettings:
    """HTTPS on a listener: a PEM certificate chain and key, optional client CA for mTLS."""

    enabled: bool = False
    certificate: str = attrs.field(default="", metadata=_meta(help="a PEM certificate file"))
    private_key: str = attrs.field(default="", metadata=_meta(help="a PEM private key file"))
    client_ca: str = attrs.field(
        default="",
        metadata=_meta(help="a PEM file of CAs whose client certificates are required (mTLS)"),
    )
    minimum_version: str = attrs.field(default="1.2", metadata=_meta(choices=("1.2", "1.3")))


@attrs.frozen(kw_only=True)
class FileSecretsSettings:
    """Secrets as files in a directory (a mounted Kubernetes Secret): a file per secret."""

    directory: str = attrs.field(
        default="", metadata=_meta(help="a directory holding a file per secret")
    )
    # A file larger than this is refused (a secret is a password or a key, not a data set).
    max_size: int = attrs.field(
        default=64 * 1024, metadata=_meta(kind="size", minimum=1, help="a size such as 64KB")
    )


@attrs.frozen(kw_only=True)
class VaultAuthSettings:
    """How the service logs in to Vault: ``token``, ``approle`` or ``kubernetes``."""

    method: str = attrs.field(
        default="token", metadata=_meta(choices=("token", "approle", "kubernetes"))
    )
    token: str = attrs.field(default="", metadata=_meta(secret=True, help="a Vault token"))
    role_id: str = ""
    secret_id: str = attrs.field(default="", metadata=_meta(secret=True, help="an AppRole secret"))
    role: str = attrs.field(default="", metadata=_meta(help="the Vault role (kubernetes)"))
    mount_point: str = attrs.field(default="", metadata=_meta(help="the auth method's mount"))
    service_account_token_path: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@attrs.frozen(kw_only=True)
class VaultSettings:
    """HashiCorp Vault KV version 2: the secrets are the keys of one secret at ``path``."""

    address: str = attrs.field(default="", metadata=_meta(help="the Vault URL; empty: no Vault"))
    mount: str = "secret"
    path: str = "workflow-orchestrator"
    namespace: str = attrs.field(default="", metadata=_meta(help="a Vault Enterprise namespace"))
    auth: VaultAuthSettings = attrs.field(factory=VaultAuthSettings)
    ca_certificate: str = attrs.field(default="", metadata=_meta(help="a PEM CA file for Vault"))
    cache_ttl: float = attrs.field(
        default=300.0, metadata=_meta(kind="duration", minimum=0, help="a duration such as 5m")
    )
    timeout: float = attrs.field(
        default=10.0, metadata=_meta(kind="duration", minimum=0.1, help="a duration such as 10s")
    )


@attrs.frozen(kw_only=True)
class SecretGrant:
    """The secrets the definitions of ``namespace`` (``*``: every namespace) may use."""

    namespace: str = ""
    secrets: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class SecretsSettings:
    """Where ``$secrets`` values come from, consulted in ``providers`` order, and who may read
    them (``grants``; a secret granted to no namespace is readable by none)."""

    providers: tuple[str, ...] = attrs.field(
        default=("env", "files", "vault"), metadata=_meta(choices=("env", "files", "vault"))
    )
    files: FileSecretsSettings = attrs.field(factory=FileSecretsSettings)
    vault: VaultSettings = attrs.field(factory=VaultSettings)
    grants: tuple[SecretGrant, ...] = ()


@attrs.frozen(kw_only=True)
class OutboundSettings:
    """Which addresses the engine's calls may reach (``call: http``, OpenAPI and schema
    documents, OAuth2 token endpoints).

    Entries are IP addresses, CIDR ranges or host names (``*.example.com`` for subdomains).
    ``deny`` always wins; ``allow`` also opens what is refused by default (loopback,
    link-local and cloud metadata, this service's own ports), by address or range only (a host
    name there never opens an address refusal). ``default: deny`` refuses everything ``allow``
    does not name. ``security.OutboundPolicy`` applies them to every resolved address.

    ``proxy`` (``http://host:port``) sends the HTTP calls of workflows through an egress proxy:
    the policy then checks each call's host name (or literal address) and the proxy's own
    addresses, since the proxy resolves the name itself.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    default: str = attrs.field(default="allow", metadata=_meta(choices=("allow", "deny")))
    # An egress proxy for the workflows' HTTP calls; never taken from the environment.
    proxy: str = attrs.field(
        default="",
        metadata=_meta(
            help="an egress proxy, http://host:port, that workflows' HTTP calls go through "
            "(http in absolute form, https through CONNECT); empty: none"
        ),
    )


@attrs.frozen(kw_only=True)
class SecuritySettings:
    """Authentication and authorization, audit, secrets and the outbound policy."""

    authentication: AuthenticationSettings = attrs.field(factory=AuthenticationSettings)
    audit: AuditSettings = attrs.field(factory=AuditSettings)
    secrets: SecretsSettings = attrs.field(factory=SecretsSettings)
    outbound: OutboundSettings = attrs.field(factory=OutboundSettings)
