"""A cheap upper estimate of a value's JSON size, to keep big inputs off the in-process path.

``json_size_exceeds(value, limit)`` walks the value (iteratively: depth costs no recursion)
and stops as soon as the running estimate passes ``limit``, so it visits at most about
``limit / 2`` nodes whatever the value's size: deciding that a 4 MB string is too big costs as
little as deciding that ``{"a": 1}`` is small. The estimate counts what the JSON text holds
(string lengths in characters plus quotes, keys, brackets and separators; a number as 8 bytes);
it is meant for a threshold, not for storage limits (``storage.check_storable`` decides those).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_NUMBER = 8
_SCALAR = 5


def json_size_exceeds(value: Any, limit: int) -> bool:
    """Whether the JSON text of ``value`` is (estimated) longer than ``limit`` characters."""
    total = 0
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2
            for key, member in item.items():
                total += (len(key) if isinstance(key, str) else _NUMBER) + 4
                pending.append(member)
                if total > limit:
                    return True
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            if total > limit:
                return True
            pending.extend(item)
        elif isinstance(item, bool) or item is None:
            total += _SCALAR
        else:
            total += _NUMBER
        if total > limit:
            return True
    return False
