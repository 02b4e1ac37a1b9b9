"""What the definitions of a namespace may use: secrets (``security.secrets.grants``) and local
processes (``workflows.run.namespaces``).

A grant of namespace ``*`` applies to every namespace; a secret granted to no namespace is read
by none. Processes are allowed to the namespaces listed (``*``: all, the default). The same
answers are used at registration (a refused definition gets a 422) and at run time (settings
may have changed since).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from workflow_orchestrator.config import SecretGrant, Settings

__all__ = ["ANY_NAMESPACE", "NamespacePolicy"]

ANY_NAMESPACE = "*"


@attrs.frozen(kw_only=True)
class NamespacePolicy:
    """Secret grants and process namespaces (see the module docstring)."""

    secrets: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    process_namespaces: frozenset[str] = frozenset({ANY_NAMESPACE})

    @classmethod
    def from_grants(
        cls, grants: Iterable[SecretGrant], process_namespaces: Iterable[str] = (ANY_NAMESPACE,)
    ) -> NamespacePolicy:
        secrets: dict[str, set[str]] = {}
        for grant in grants:
            secrets.setdefault(grant.namespace, set()).update(grant.secrets)
        return cls(
            secrets={namespace: frozenset(names) for namespace, names in secrets.items()},
            process_namespaces=frozenset(process_namespaces),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> NamespacePolicy:
        return cls.from_grants(settings.security.secrets.grants, settings.workflows.run.namespaces)

    def secret_granted(self, namespace: str, name: str) -> bool:
        """Whether definitions of ``namespace`` may read secret ``name``."""
        return name in self.secrets.get(namespace, ()) or name in self.secrets.get(
            ANY_NAMESPACE, ()
        )

    def process_allowed(self, namespace: str) -> bool:
        """Whether definitions of ``namespace`` may run ``run.shell``/``run.script``."""
        allowed = self.process_namespaces
        return ANY_NAMESPACE in allowed or namespace in allowed
