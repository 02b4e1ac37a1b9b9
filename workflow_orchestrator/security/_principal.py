"""Who is calling and what they may do: principals, roles and permissions.

Roles (``docs/security.md``):

- ``viewer``: read definitions, instances and their history;
- ``operator``: what a viewer may, and start, cancel, suspend and resume instances;
- ``developer``: what a viewer may, and register and delete definitions;
- ``publisher``: post events;
- ``admin``: everything, the management endpoints and the audit log included.

A principal's ``namespaces`` (None: all) bound the definitions and instances it may touch.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

__all__ = [
    "ANONYMOUS",
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "namespaces_from",
]


class Permission(enum.StrEnum):
    """One kind of request."""

    READ = "read"
    OPERATE = "operate"
    DEVELOP = "develop"
    PUBLISH = "publish"
    ADMIN = "admin"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ}),
    "operator": frozenset({Permission.READ, Permission.OPERATE}),
    "developer": frozenset({Permission.READ, Permission.DEVELOP}),
    "publisher": frozenset({Permission.PUBLISH}),
    "admin": frozenset(Permission),
}


def namespaces_from(values: Iterable[str]) -> frozenset[str] | None:
    """The namespaces a list names; None (all) when it is empty or holds ``*``."""
    found = frozenset(v for v in values if v)
    return None if not found or "*" in found else found


@attrs.frozen
class Principal:
    """An authenticated caller (``via``: ``api-key``, ``oidc`` or ``anonymous``)."""

    name: str
    roles: frozenset[str]
    namespaces: frozenset[str] | None = None
    via: str = "api-key"

    @property
    def permissions(self) -> frozenset[Permission]:
        """Every permission the roles give."""
        granted: set[Permission] = set()
        for role in self.roles:
            granted |= ROLE_PERMISSIONS.get(role, frozenset())
        return frozenset(granted)

    def may(self, permission: Permission) -> bool:
        """Whether a role of the principal gives ``permission``."""
        return permission in self.permissions

    def sees(self, namespace: str) -> bool:
        """Whether ``namespace`` is one of the principal's."""
        return self.namespaces is None or namespace in self.namespaces

    @property
    def is_admin(self) -> bool:
        """Whether the principal holds the admin role."""
        return "admin" in self.roles


#: The caller when authentication is off: everything is allowed.
ANONYMOUS = Principal(name="anonymous", roles=frozenset({"admin"}), via="anonymous")
