"""Secret values kept out of what is stored: `SecretRedactor`.

A run remembers the values of the secrets it read (a text secret, and each text leaf of an
object secret, of at least ``MIN_REDACTED_LENGTH`` characters: shorter ones would blank out
ordinary words), also in their percent-encoded forms (as a URL query carries them).
``redact`` returns a JSON value in which every occurrence of one of them, in a string or an
object key, is replaced by ``[redacted secret <name>]``. One regular expression scans each
string; a run that read no secret never calls it (``bool(redactor)`` is False).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import attrs

__all__ = ["MIN_REDACTED_LENGTH", "SecretRedactor", "redaction_marker"]

MIN_REDACTED_LENGTH = 4


def redaction_marker(name: str) -> str:
    """What stands for a value of secret ``name`` in stored data."""
    return f"[redacted secret {name}]"


def _text_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _text_leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _text_leaves(item)


@attrs.define(eq=False)
class SecretRedactor:
    """The secret values one run has read, and the redaction of stored data."""

    _markers: dict[str, str] = attrs.field(factory=dict, init=False)
    _pattern: re.Pattern[str] | None = attrs.field(default=None, init=False)

    def __bool__(self) -> bool:
        return bool(self._markers)

    def add(self, name: str, value: Any) -> None:
        """Remember the text leaves of ``value``, the value of secret ``name``."""
        added = False
        for text in _text_leaves(value):
            if len(text) < MIN_REDACTED_LENGTH:
                continue
            # As written, and percent-encoded as a URL query or path carries it.
            for form in (text, quote(text, safe=""), quote_plus(text)):
                if form not in self._markers:
                    self._markers[form] = redaction_marker(name)
                    added = True
        if added:
            # The longest first, so that a value containing another is replaced whole.
            texts = sorted(self._markers, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(text) for text in texts))

    def holds_secret(self, text: str) -> bool:
        """Whether ``text`` holds one of the remembered values."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def redact_text(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(lambda match: self._markers[match.group(0)], text)

    def redact(self, value: Any) -> Any:
        """``value`` (JSON) with every secret value replaced (a copy where anything changed)."""
        if self._pattern is None:
            return value
        return self._redact(value)

    def _redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {self.redact_text(str(k)): self._redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact(item) for item in value]
        return value
