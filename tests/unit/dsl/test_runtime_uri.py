"""URI templates and query strings."""

from __future__ import annotations

import pytest

from workflow_orchestrator.dsl.runtime._uri import (
    MissingTemplateValue,
    expand_uri_template,
    with_query,
)


def test_simple_expansion_encodes_values() -> None:
    """``{name}`` is replaced by the URL-encoded top-level property."""
    assert (
        expand_uri_template("https://a/{q}/{n}", {"q": "a b/c", "n": 3}) == "https://a/a%20b%2Fc/3"
    )


def test_reserved_expansion_keeps_slashes() -> None:
    """``{+path}`` keeps reserved characters."""
    assert expand_uri_template("https://a/{+path}", {"path": "x/y"}) == "https://a/x/y"


def test_missing_value_names_the_placeholder() -> None:
    """A missing property raises with the placeholder and the available names."""
    with pytest.raises(MissingTemplateValue, match="needs 'id'"):
        expand_uri_template("https://a/{id}", {})


def test_query_is_appended_without_nulls() -> None:
    """Query parameters join an existing query; null values are left out."""
    assert with_query("https://a/b?x=1", {"y": True, "z": None}) == "https://a/b?x=1&y=true"
