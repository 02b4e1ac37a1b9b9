"""Who may call what: authentication, roles, namespaces and the Host allow-list, per request.

Before any route runs, each app asks the `Authenticator` who is calling (401 problem+json with
``WWW-Authenticate: Bearer`` when nobody valid is) and checks that the principal's roles give
the permission the route needs (403). Routes then check namespaces themselves, since only they
know which definition or instance a request is about: a read outside the principal's namespaces
answers 404 (as if it did not exist), a write 403; lists are filtered.

On the management port ``/health``, ``/health/live`` and ``/health/ready`` stay open for
probes; ``/health/detailed`` and ``/metrics`` follow ``security.authentication.healthDetails``
and ``.metrics`` (open, authenticated or admin); everything else there is for admins.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
from collections.abc import Mapping

import attrs
from quart import Quart, g, request

from workflow_orchestrator.config import Settings
from workflow_orchestrator.gateway._problems import ProblemError
from workflow_orchestrator.security import (
    ANONYMOUS,
    ApiKeys,
    Authenticator,
    Permission,
    Principal,
    TokenKeysUnavailable,
    TokenVerifier,
    Unauthenticated,
)

__all__ = [
    "API_PERMISSIONS",
    "OPEN_API_ENDPOINTS",
    "AccessPolicy",
    "current_principal",
    "forbid_outside",
    "install_api_access",
    "install_management_access",
    "visible_namespaces",
]

logger = logging.getLogger(__name__)

#: The permission each API route needs (by Quart endpoint name).
API_PERMISSIONS: Mapping[str, Permission] = {
    "v1.definitions.register": Permission.DEVELOP,
    "v1.definitions.listing": Permission.READ,
    "v1.definitions.latest": Permission.READ,
    "v1.definitions.versions": Permission.READ,
    "v1.definitions.one_version": Permission.READ,
    "v1.definitions.delete": Permission.DEVELOP,
    "v1.instances.start": Permission.OPERATE,
    "v1.instances.listing": Permission.READ,
    "v1.instances.one": Permission.READ,
    "v1.instances.cancel": Permission.OPERATE,
    "v1.instances.suspend": Permission.OPERATE,
    "v1.instances.resume": Permission.OPERATE,
    "v1.instances.history": Permission.READ,
    "v1.events.publish_event": Permission.PUBLISH,
    "v1.audit.listing": Permission.ADMIN,
}
#: API routes every caller may read: the OpenAPI document (it describes, holds nothing).
OPEN_API_ENDPOINTS = frozenset({"openapi.document"})
#: Management paths every caller may read (probes).
OPEN_MANAGEMENT_PATHS = frozenset({"/health", "/health/live", "/health/ready"})
#: Paths exempt from the Host allow-list (probes address the pod by its IP).
_HOST_EXEMPT = OPEN_MANAGEMENT_PATHS

_ROLE_FOR = {
    Permission.READ: "viewer (or operator, developer, admin)",
    Permission.OPERATE: "operator (or admin)",
    Permission.DEVELOP: "developer (or admin)",
    Permission.PUBLISH: "publisher (or admin)",
    Permission.ADMIN: "admin",
}


@attrs.frozen(kw_only=True)
class AccessPolicy:
    """The authenticator and the access settings of both apps."""

    authenticator: Authenticator
    metrics: str = "open"
    health_details: str = "open"
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, tokens: TokenVerifier | None = None) -> AccessPolicy:
        """The policy ``security.authentication`` and ``server.allowedHosts`` describe;
        ``tokens`` verifies OIDC bearer tokens (when ``security.authentication.oidc`` is on)."""
        authentication = settings.security.authentication
        return cls(
            authenticator=Authenticator(
                enabled=authentication.enabled,
                api_keys=ApiKeys(authentication.api_keys),
                tokens=tokens,
            ),
            metrics=authentication.metrics,
            health_details=authentication.health_details,
            allowed_hosts=settings.server.allowed_hosts or _local_hosts(settings),
        )

    @classmethod
    def open(cls) -> AccessPolicy:
        """No authentication (every caller is `ANONYMOUS`): tests and local development."""
        return cls(authenticator=Authenticator(enabled=False, api_keys=ApiKeys(())))


_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _local_hosts(settings: Settings) -> tuple[str, ...]:
    """With authentication off on loopback listeners (``make run``, development), the names of
    this machine only: a web page's DNS-rebinding name reaches the port, never the app."""
    server = settings.server
    hosts = (server.host, server.management_host or server.host)
    if settings.security.authentication.enabled or not all(_is_loopback(h) for h in hosts):
        return ()
    return _LOCAL_NAMES


def current_principal() -> Principal:
    """The principal of the request being handled."""
    principal = getattr(g, "principal", None)
    return principal if isinstance(principal, Principal) else ANONYMOUS


def visible_namespaces() -> frozenset[str] | None:
    """The namespaces the caller may see (None: all)."""
    return current_principal().namespaces


def forbid_outside(namespace: str, what: str) -> None:
    """Raise a 403 problem when ``namespace`` is not the caller's (a write outside it)."""
    principal = current_principal()
    if not principal.sees(namespace):
        raise ProblemError(
            403,
            "forbidden",
            "Forbidden",
            f"{principal.name!r} may not change {what} in namespace {namespace!r}; its "
            f"namespaces are {', '.join(sorted(principal.namespaces or ()))}",
        )


def _host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    name = host.lower()
    bare = name.rsplit(":", 1)[0] if name.count(":") == 1 or name.startswith("[") else name
    bare = bare.strip("[]")
    for pattern in patterns:
        pattern = pattern.lower()
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(bare, pattern):
            return True
    return False


def _check_host(policy: AccessPolicy) -> None:
    if not policy.allowed_hosts or request.path in _HOST_EXEMPT:
        return
    host = request.headers.get("Host", "")
    if not _host_allowed(host, policy.allowed_hosts):
        raise ProblemError(
            400,
            "invalid-host",
            "Invalid Host",
            f"the Host header {host[:100]!r} is not one this service answers; add it to "
            "server.allowedHosts or use one of its names",
        )


async def _authenticate(policy: AccessPolicy) -> Principal:
    try:
        principal = await policy.authenticator.authenticate(request.headers.get("Authorization"))
    except TokenKeysUnavailable as exc:
        logger.warning("cannot verify a bearer token: %s", exc)
        raise ProblemError(
            503,
            "token-keys-unavailable",
            "Service Unavailable",
            "the service cannot verify tokens right now (its issuer's signing keys are out of "
            "reach); try again later",
            headers={"Retry-After": "5"},
        ) from None
    except Unauthenticated as exc:
        given = "Authorization" in request.headers
        challenge = 'Bearer realm="workflow-orchestrator"' + (
            ', error="invalid_token"' if given else ""
        )
        raise ProblemError(
            401,
            "unauthenticated",
            "Unauthenticated",
            str(exc),
            headers={"WWW-Authenticate": challenge},
        ) from None
    g.principal = principal
    return principal


def _require(principal: Principal, permission: Permission) -> None:
    if not principal.may(permission):
        raise ProblemError(
            403,
            "forbidden",
            "Forbidden",
            f"{principal.name!r} (roles: {', '.join(sorted(principal.roles)) or 'none'}) may not "
            f"do this; it needs the role {_ROLE_FOR[permission]}",
        )


def install_api_access(app: Quart, policy: AccessPolicy) -> None:
    """Check the Host, authenticate and require each route's permission on the API app."""

    @app.before_request
    async def access() -> None:
        _check_host(policy)
        if request.endpoint in OPEN_API_ENDPOINTS:
            return
        principal = await _authenticate(policy)
        if request.endpoint is not None:  # None: no route matched (a 404 follows)
            # A route without a named permission is for admins: fail closed.
            _require(principal, API_PERMISSIONS.get(request.endpoint, Permission.ADMIN))


def install_management_access(app: Quart, policy: AccessPolicy) -> None:
    """Check the Host and who may read each management endpoint."""

    @app.before_request
    async def access() -> None:
        _check_host(policy)
        path = request.path
        if path in OPEN_MANAGEMENT_PATHS:
            return
        if path == "/metrics":
            level = policy.metrics
        elif path == "/health/detailed":
            level = policy.health_details
        else:
            level = "admin"
        if level == "open":
            return
        principal = await _authenticate(policy)
        if level == "admin":
            _require(principal, Permission.ADMIN)
