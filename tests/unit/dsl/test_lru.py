"""The bounded caches: least recently used values go first, equal documents share an entry."""

from __future__ import annotations

import pytest

from workflow_orchestrator.dsl import ExpressionEngine, LruCache, content_hash
from workflow_orchestrator.dsl.expressions import _engine
from workflow_orchestrator.dsl.runtime import _schema


def test_the_least_recently_used_value_goes_first() -> None:
    """Past its bound the cache drops the value used longest ago, not the one put first."""
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2
    with pytest.raises(ValueError, match="max_entries must be at least 1, got 0"):
        LruCache(0)


def test_equal_documents_have_one_content_hash() -> None:
    """Two objects with the same JSON content (keys in any order) hash alike; others do not."""
    assert content_hash({"type": "object", "required": ["a"]}) == content_hash(
        {"required": ["a"], "type": "object"}
    )
    assert content_hash({"type": "object"}) != content_hash({"type": "array"})


def test_schema_validators_are_shared_by_content_and_bounded() -> None:
    """Schemas fetched anew for every run (new objects, same content) share one validator, and
    many distinct schemas never keep more than the bound."""
    before = len(_schema._VALIDATORS)
    for _ in range(50):
        _schema.validate_against({"type": "object", "title": "fetched"}, {}, "/input", "input")
    assert len(_schema._VALIDATORS) <= before + 1
    for index in range(_schema._MAX_VALIDATORS + 100):
        _schema.validate_against({"type": "object", "title": f"s{index}"}, {}, "/", "input")
    assert len(_schema._VALIDATORS) == _schema._MAX_VALIDATORS


def test_the_compile_cache_keeps_expressions_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """An expression used again stays compiled while newer ones push older ones out (a cache
    of 500 here: the service's 10,000 would take 20 s of jq compilations to fill)."""
    monkeypatch.setattr(_engine, "_CACHE_SIZE", 500)
    engine = ExpressionEngine()
    first = engine.compile("${ .a }")
    second = engine.compile("${ .b }")
    for index in range(1_050):
        engine.compile(f"${{ .k{index} }}")
        if index % 100 == 0:
            assert engine.compile("${ .a }") is first
    assert engine.compile("${ .a }") is first
    assert engine.compile("${ .b }") is not second  # not used again: pushed out
