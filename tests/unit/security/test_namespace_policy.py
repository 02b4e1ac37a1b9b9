"""Secret grants and process namespaces: who may use what."""

from __future__ import annotations

from workflow_orchestrator.config import SecretGrant
from workflow_orchestrator.security import NamespacePolicy


def test_a_secret_is_granted_to_its_namespace_and_by_the_wildcard() -> None:
    """A grant to a namespace, or to *, lets it read; anything else is refused."""
    policy = NamespacePolicy.from_grants(
        [
            SecretGrant(namespace="billing", secrets=("dbpass",)),
            SecretGrant(namespace="*", secrets=("shared",)),
            SecretGrant(namespace="billing", secrets=("more",)),
        ]
    )
    assert policy.secret_granted("billing", "dbpass")
    assert policy.secret_granted("billing", "more")
    assert policy.secret_granted("shop", "shared")
    assert not policy.secret_granted("shop", "dbpass")
    assert not NamespacePolicy().secret_granted("shop", "dbpass")


def test_processes_are_allowed_per_namespace() -> None:
    """workflows.run.namespaces: * allows every namespace, a list only those."""
    assert NamespacePolicy().process_allowed("anything")
    listed = NamespacePolicy.from_grants([], ["ops"])
    assert listed.process_allowed("ops")
    assert not listed.process_allowed("shop")
