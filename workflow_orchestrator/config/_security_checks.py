"""Checks of ``security`` and ``server.tls`` across fields.

``check_security`` runs when the configuration loads (an API key too short to resist guessing,
a TLS listener without its files); ``startup_problems`` when the service starts: authentication
switched on with no way to authenticate, or a Kafka TLS file that cannot be used, stops it with
the key to fix, never at the first request or connection (``config show`` still shows such a
configuration).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Mapping

from workflow_orchestrator.config._errors import ConfigProblem
from workflow_orchestrator.config._kafka_checks import kafka_startup_problems
from workflow_orchestrator.config._pool_checks import pool_startup_problems
from workflow_orchestrator.config._security_settings import TlsSettings
from workflow_orchestrator.config._settings import Settings

__all__ = ["MIN_API_KEY_LENGTH", "check_security", "startup_problems", "valid_host_pattern"]

MIN_API_KEY_LENGTH = 16
_HASHED = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
_HOST_NAME = re.compile(
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*\.?$"
)


def valid_host_pattern(entry: str) -> bool:
    """Whether ``entry`` is an IP address, a CIDR range or a host name (``*.`` allowed)."""
    try:
        ipaddress.ip_network(entry, strict=False)
        return True
    except ValueError:
        return bool(_HOST_NAME.match(entry)) and len(entry) <= 253


def _trusted_jwks_url(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname:
        return False
    if parsed.scheme == "https":
        return True
    if parsed.scheme != "http":
        return False
    if parsed.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parsed.hostname).is_loopback
    except ValueError:
        return False


def check_security(
    settings: Settings,
    sources: Mapping[str, str],
    source_of: Callable[[Mapping[str, str], str], str],
) -> list[ConfigProblem]:
    """Every problem of the security settings (none when they hold together)."""
    problems: list[ConfigProblem] = []

    def problem(key: str, message: str) -> None:
        problems.append(ConfigProblem(source=source_of(sources, key), key=key, message=message))

    authentication = settings.security.authentication
    oidc = authentication.oidc
    names: set[str] = set()
    for i, api_key in enumerate(authentication.api_keys):
        key = f"security.authentication.apiKeys[{i}]"
        if not api_key.name:
            problem(f"{key}.name", "give the key a name (it is who the audit log names)")
        elif api_key.name in names:
            problem(f"{key}.name", f"the name {api_key.name!r} is used twice; names are unique")
        names.add(api_key.name)
        # A ${secret:NAME} reference is checked once resolved, when the service starts.
        if "${secret:" not in api_key.key:
            _check_key_value(f"{key}.key", api_key.key, problem)
        if not api_key.roles:
            problem(
                f"{key}.roles",
                "give the key at least one role: viewer, operator, developer, publisher or admin",
            )
    if oidc.enabled:
        for field, value in (
            ("issuer", oidc.issuer),
            ("audience", oidc.audience),
            ("jwksUrl", oidc.jwks_url),
        ):
            if not value:
                problem(
                    f"security.authentication.oidc.{field}",
                    "OIDC needs it; set it or disable security.authentication.oidc",
                )
        if oidc.jwks_url and not _trusted_jwks_url(oidc.jwks_url):
            problem(
                "security.authentication.oidc.jwksUrl",
                "the JWKS URL must be https:// (http:// only on a loopback address): whoever "
                "can alter the keys can sign any token",
            )
    server = settings.server
    for prefix, tls in (
        ("server.tls", server.tls),
        ("server.managementTls", server.management_tls),
    ):
        if tls is not None:
            _check_tls(prefix, tls, problem)
    for i, entry in enumerate(server.allowed_hosts):
        if not valid_host_pattern(entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry):
            problem(f"server.allowedHosts[{i}]", f"{entry!r} is not a host name or address")
    outbound = settings.security.outbound
    for which, entries in (("allow", outbound.allow), ("deny", outbound.deny)):
        for i, entry in enumerate(entries):
            if not valid_host_pattern(entry):
                problem(
                    f"security.outbound.{which}[{i}]",
                    f"{entry!r} is not an IP address, a CIDR range (10.0.0.0/8) or a host name "
                    "(api.example.com, *.example.com)",
                )
    if outbound.proxy and (reason := proxy_problem(outbound.proxy)):
        problem("security.outbound.proxy", reason)
    for i, grant in enumerate(settings.security.secrets.grants):
        if not grant.namespace:
            problem(
                f"security.secrets.grants[{i}].namespace",
                "name the namespace (or * for every namespace)",
            )
    return problems


def proxy_problem(url: str) -> str | None:
    """Why ``url`` is not an egress proxy's ``http://host:port``, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        return f"{url!r} is not http://host:port (the proxy's address and port)"
    if parts.path not in ("", "/") or parts.query or parts.username or parts.fragment:
        return f"{url!r} has more than http://host:port"
    return None


def _check_key_value(key: str, value: str, problem: Callable[[str, str], None]) -> None:
    """An API key long enough to resist guessing, or a well-formed SHA-256 hash of one."""
    if value.startswith("sha256:"):
        if not _HASHED.match(value):
            problem(key, "a hashed key is sha256: and 64 hexadecimal digits")
    elif len(value) < MIN_API_KEY_LENGTH:
        problem(
            key,
            f"the key has fewer than {MIN_API_KEY_LENGTH} characters; use a long random key "
            "such as `openssl rand -hex 32`",
        )


def _check_tls(prefix: str, tls: TlsSettings, problem: Callable[[str, str], None]) -> None:
    if not tls.enabled:
        return
    for field, value in (("certificate", tls.certificate), ("privateKey", tls.private_key)):
        if not value:
            problem(f"{prefix}.{field}", "TLS needs it: the path of a PEM file")


def startup_problems(settings: Settings, source_of: Callable[[str], str]) -> list[ConfigProblem]:
    """What keeps the service from starting with these settings, their ``${secret:NAME}``
    references resolved (none when it may): authentication on with no credential, an API
    key that a reference turned into too short or malformed a value, a Kafka TLS file
    that cannot be used (``kafka_startup_problems``), or a primary pool too small to run the
    service (``pool_startup_problems``)."""
    problems: list[ConfigProblem] = []

    def problem(key: str, message: str) -> None:
        problems.append(ConfigProblem(source=source_of(key), key=key, message=message))

    authentication = settings.security.authentication
    if authentication.enabled and not authentication.api_keys and not authentication.oidc.enabled:
        problem(
            "security.authentication.enabled",
            "authentication is on but no credential is configured; add "
            "security.authentication.apiKeys (or enable security.authentication.oidc), "
            "or set enabled: false on a machine nobody else reaches",
        )
    for i, api_key in enumerate(authentication.api_keys):
        _check_key_value(f"security.authentication.apiKeys[{i}].key", api_key.key, problem)
    problems.extend(kafka_startup_problems(settings, source_of))
    problems.extend(pool_startup_problems(settings, source_of))
    return problems
