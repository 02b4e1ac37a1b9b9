"""The whole document: ``document``, ``use``, ``do``, ``input``, ``output``, ``timeout`` and
``schedule``; the entry point ``structural_problems``.

The top level is open, as in the schema: keys other than these are allowed (and ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.validation._problems import DefinitionProblem

from ._events import STRATEGY
from ._nodes import ROOT, Choice, Entry, Issues, ListOf, MapOf, Record, pointer
from ._policies import (
    AUTHENTICATION_POLICY,
    CATALOG,
    ERROR,
    INPUT,
    OUTPUT,
    RETRY_POLICY,
    TIMEOUT,
    TIMEOUT_OR_NAME,
)
from ._tasks import TASK
from ._values import DURATION, MAPPING, NAME, SEMVER, TASK_LIST, TEXT, TEXT_LIST

_EXTENSION = Record(
    noun="an extension",
    fields={
        "extend": Choice(
            (
                "call",
                "composite",
                "emit",
                "for",
                "listen",
                "raise",
                "run",
                "set",
                "switch",
                "try",
                "wait",
                "all",
            )
        ),
        "when": TEXT,
        "before": TASK_LIST,
        "after": TASK_LIST,
    },
    required=("extend",),
)

WORKFLOW = Record(
    noun="a workflow definition",
    fields={
        "document": Record(
            noun="the document",
            fields={
                "dsl": SEMVER,
                "namespace": NAME,
                "name": NAME,
                "version": SEMVER,
                "title": TEXT,
                "summary": TEXT,
                "tags": MAPPING,
                "metadata": MAPPING,
            },
            required=("dsl", "namespace", "name", "version"),
        ),
        "input": INPUT,
        "use": Record(
            noun="the 'use' section",
            fields={
                "authentications": MapOf(AUTHENTICATION_POLICY),
                "errors": MapOf(ERROR),
                "extensions": ListOf(
                    Entry(_EXTENSION, noun="a mapping of one extension name to its extension"),
                    noun="a list of extensions",
                ),
                "functions": MapOf(TASK),
                "retries": MapOf(RETRY_POLICY),
                "secrets": TEXT_LIST,
                "timeouts": MapOf(TIMEOUT),
                "catalogs": MapOf(CATALOG),
            },
        ),
        "do": TASK_LIST,
        "timeout": TIMEOUT_OR_NAME,
        "output": OUTPUT,
        "schedule": Record(
            noun="a schedule",
            fields={"every": DURATION, "cron": TEXT, "after": DURATION, "on": STRATEGY},
        ),
    },
    required=("document", "do"),
    closed=False,
)


def structural_issues(document: Any) -> Issues:
    """The raw issues of ``document`` against the grammar, in walk order."""
    issues: Issues = []
    WORKFLOW.check(document, ROOT, issues)
    return issues


def structural_problems(document: Mapping[str, Any]) -> list[DefinitionProblem]:
    """Every way ``document`` breaks the DSL's structure (what the 1.0.3 schema refuses).

    Empty exactly when the official schema accepts the document. Problems are in walk order;
    each is at the pointer of the offending value (or below where the schema reports it).
    """
    return [
        DefinitionProblem(pointer=pointer(path), message=message, rule=rule)
        for path, message, rule in structural_issues(document)
    ]
