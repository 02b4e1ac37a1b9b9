"""``SecretRedactor``: the values a run read never reach what is stored."""

from __future__ import annotations

from workflow_orchestrator.security import SecretRedactor


def test_nothing_read_changes_nothing() -> None:
    """A redactor without values is falsy and returns the very same object."""
    redactor = SecretRedactor()
    data = {"a": ["b"]}
    assert not redactor
    assert redactor.redact(data) is data


def test_values_are_replaced_in_strings_keys_and_nested_data() -> None:
    """Text secrets and the text leaves of object secrets are replaced wherever they occur,
    whole or inside a longer string, the longest first; short values are left alone."""
    redactor = SecretRedactor()
    redactor.add("dbpass", "hunter22")
    redactor.add("api", {"token": "tok-12345", "id": 7, "short": "ab"})
    redactor.add("longer", "hunter22-extended")
    assert redactor
    stored = redactor.redact(
        {
            "s": "hunter22",
            "header": "Bearer tok-12345",
            "hunter22": [1, "x", {"deep": "hunter22-extended"}],
            "plain": "ab",
            "n": 7,
        }
    )
    assert stored == {
        "s": "[redacted secret dbpass]",
        "header": "Bearer [redacted secret api]",
        "[redacted secret dbpass]": [1, "x", {"deep": "[redacted secret longer]"}],
        "plain": "ab",
        "n": 7,
    }
