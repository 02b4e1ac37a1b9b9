"""A bounded least-recently-used cache, for what the service builds once and reuses
(interpreters, validators, compiled expressions): whatever users register or send, the cache
holds at most ``max_entries`` values and drops the one used longest ago first."""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

__all__ = ["LruCache", "content_hash"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``max_entries`` values; ``get`` marks a value used, ``put`` drops the least
    recently used one past the bound."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[K, V] = collections.OrderedDict()

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key``; returns it."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


def content_hash(document: Any) -> str:
    """The SHA-256 of ``document``'s canonical JSON: equal documents share a cache entry,
    whichever object holds them."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
