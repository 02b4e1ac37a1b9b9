"""Registration of run.shell / run.script tasks: the schema's shapes (1.0.3) and the script
languages this runtime runs."""

from __future__ import annotations

import pytest

from workflow_orchestrator.dsl.validation import (
    UNSUPPORTED_RULES,
    ValidationOptions,
    load_document,
    validate_definition,
)

HEADER = "document: {dsl: '1.0.3', namespace: test, name: unit, version: '1.0.0'}\n"
ENABLED = ValidationOptions(allow_shell=True, allow_script=True)


def _problems(run: str, options: ValidationOptions = ENABLED) -> list[str]:
    text = f"{HEADER}do:\n  - p:\n      run:\n        {run}\n"
    return [str(problem) for problem in validate_definition(load_document(text), options)]


@pytest.mark.parametrize(
    "run",
    [
        "shell: {command: 'echo $1', arguments: [a, '${ .b }'], environment: {A: x}, stdin: s}",
        "script: {language: js, code: 'console.log(1)', arguments: [a]}",
        "script: {language: JavaScript, code: x}",
        "script: {language: python, source: {endpoint: 'https://scripts.example/a.py'}}",
        "script: {language: python, code: x}\n        await: false\n        return: all",
    ],
)
def test_valid_process_tasks_are_accepted(run: str) -> None:
    """Shell and script tasks of every documented shape register where enabled."""
    assert _problems(run) == []


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        (
            "script: {language: ruby, code: x}",
            "/do/0/p/run/script/language: script language 'ruby' is not supported; use js (or "
            "javascript) or python, or remove this task (script-language)",
        ),
        (
            "shell: {command: x, arguments: {a: b}}",
            '/do/0/p/run/shell/arguments: must be a list of strings, not {"a": "b"} (type)',
        ),
        (
            "script: {language: python}",
            "/do/0/p/run/script: a script needs one of 'code' or 'source'; add one (oneOf)",
        ),
        (
            "script: {language: python, code: x, source: {endpoint: 'https://a.example/b'}}",
            "/do/0/p/run/script: a script takes only one of 'code' or 'source', and this one "
            "has 'code' and 'source'; keep one (oneOf)",
        ),
    ],
)
def test_invalid_process_tasks_name_the_pointer_and_the_fix(run: str, problem: str) -> None:
    """arguments is a list (DSL 1.0.3), a script has code or a source, and its language is
    one this runtime runs."""
    assert _problems(run) == [problem]


def test_the_language_is_not_reported_while_scripts_are_disabled() -> None:
    """With run.script off, only script-disabled is reported (one fix at a time)."""
    problems = _problems("script: {language: ruby, code: x}", ValidationOptions())
    assert [p.rsplit(" (", 1)[-1] for p in problems] == ["script-disabled)"]


def test_script_language_is_an_unsupported_rule() -> None:
    """script-language is a refusal of this runtime (valid DSL), like shell-disabled."""
    assert "script-language" in UNSUPPORTED_RULES
