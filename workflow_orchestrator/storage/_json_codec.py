"""The JSON decoder of ``json``/``jsonb`` values read from PostgreSQL: orjson, where it reads
exactly what the standard library reads.

Every snapshot, inbox event and outbox row the service reads comes back as JSON text; decoding
it is a large part of activating an instance. ``orjson.loads`` is two to three times faster
than ``json.loads`` and returns the same values for what ``jsonb`` holds, with one exception:
an integer beyond 64 bits becomes a float (``json.loads`` keeps it an exact ``int``). So a text
holding 19 digits in a row (anywhere, also inside a string; a cheap byte scan) is decoded by
``json.loads``, as is any text orjson refuses (nesting deeper than it allows, say). The result
is always what ``json.loads`` would return.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["decode_json"]

# Every byte to a space except the ASCII digits (kept): 19 digits in a row then show as a run
# of 19 zeros. UTF-8 continuation bytes are never ASCII digits.
_DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_NUMBER = b"0" * 19


def decode_json(text: str | bytes) -> Any:
    """``json.loads(text)``, faster (see the module docstring)."""
    try:
        data = text.encode() if isinstance(text, str) else text
    except UnicodeEncodeError:  # a lone surrogate: only json.loads reads it
        return json.loads(text)
    if _LONG_NUMBER in data.translate(_DIGITS_ONLY):
        return json.loads(text)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(text)
