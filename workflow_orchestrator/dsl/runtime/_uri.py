"""URI templates (RFC 6570 level 1-2 subset) as the DSL's endpoints use them.

``{name}`` is replaced by the URL-encoded value of the top-level property ``name`` of the data;
``{+name}`` keeps reserved characters. A placeholder whose value is missing is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from workflow_orchestrator.errors import OrchestratorError

_PLACEHOLDER = re.compile(r"\{(\+?)([A-Za-z0-9_.]+)\}")


class MissingTemplateValue(OrchestratorError, LookupError):
    """A URI template placeholder that the data does not provide."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expand_uri_template(template: str, values: Any) -> str:
    """``template`` with its placeholders replaced from the mapping ``values``."""
    if "{" not in template:
        return template
    source = values if isinstance(values, Mapping) else {}

    def substitute(match: re.Match[str]) -> str:
        reserved, name = match.groups()
        if name not in source or source[name] is None:
            raise MissingTemplateValue(
                f"uri template {template!r} needs '{name}' but the task input has no such "
                f"property; available: {sorted(source)}"
            )
        return quote(_text(source[name]), safe=":/?#[]@!$&'()*+,;=" if reserved else "")

    return _PLACEHOLDER.sub(substitute, template)


def with_query(url: str, query: Mapping[str, Any] | None) -> str:
    """``url`` with the ``query`` parameters appended (null values left out)."""
    if not query:
        return url
    parts = urlsplit(url)
    extra = urlencode([(k, _text(v)) for k, v in query.items() if v is not None])
    joined = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))
