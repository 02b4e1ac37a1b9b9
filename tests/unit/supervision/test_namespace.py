"""The supervision package: a public namespace over the actor runtime's supervision half."""

from __future__ import annotations

import pkgutil

import workflow_orchestrator.supervision as supervision


def test_names_are_the_runtime_objects() -> None:
    """Every public supervision name is the actor runtime's own object, not a copy."""
    for name in supervision.__all__:
        assert getattr(supervision, name).__module__.startswith("workflow_orchestrator.actors._")


def test_has_no_implementation_of_its_own() -> None:
    """The implementation lives in actors (one package, trio _core style); nothing here."""
    assert [module.name for module in pkgutil.iter_modules(supervision.__path__)] == []
