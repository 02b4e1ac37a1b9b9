"""API keys (``security.authentication.apiKeys``), compared in constant time.

Every configured key is kept as its SHA-256 digest (a key given as ``sha256:<hex>`` is one
already), and a presented key is hashed and compared with every digest using
``hmac.compare_digest``, so neither the time taken nor the order of the keys tells an
attacker how close a guess was.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from workflow_orchestrator.config import ApiKeySettings
from workflow_orchestrator.security._principal import Principal, namespaces_from

__all__ = ["ApiKeys", "key_digest"]


def key_digest(key: str) -> bytes:
    """The SHA-256 digest a key is compared by (``sha256:<hex>`` is taken as given)."""
    if key.startswith("sha256:"):
        return bytes.fromhex(key.removeprefix("sha256:"))
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The configured keys and the principal each one stands for."""

    def __init__(self, keys: Sequence[ApiKeySettings]) -> None:
        self._keys = [
            (
                key_digest(k.key),
                Principal(
                    name=k.name,
                    roles=frozenset(k.roles),
                    namespaces=namespaces_from(k.namespaces),
                    via="api-key",
                ),
            )
            for k in keys
        ]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def find(self, presented: str) -> Principal | None:
        """The principal of ``presented``, or None; looks at every key whatever matches."""
        digest = hashlib.sha256(presented.encode()).digest()
        found: Principal | None = None
        for known, principal in self._keys:
            if hmac.compare_digest(known, digest) and found is None:
                found = principal
        return found
