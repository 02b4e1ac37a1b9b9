"""Schedules the scheduler could not run are refused when the definition is submitted."""

from __future__ import annotations

import pytest

from workflow_orchestrator.definitions import parse_submission, schedule_problems
from workflow_orchestrator.dsl.validation import InvalidDefinition

HEADER = "document: {dsl: '1.0.3', namespace: t, name: s, version: '1.0.0'}\n"
BODY = "do:\n  - one:\n      set: {a: 1}\n"


def test_unreadable_cron_is_refused_with_its_pointer() -> None:
    """A cron expression croniter cannot read is a problem at /schedule/cron."""
    with pytest.raises(InvalidDefinition) as caught:
        parse_submission(HEADER + "schedule:\n  cron: 'every monday'\n" + BODY)
    (problem,) = caught.value.problems
    assert (problem.pointer, problem.rule) == ("/schedule/cron", "schedule")
    assert "every monday" in problem.message


def test_two_triggers_are_refused() -> None:
    """``every`` and ``cron`` together have no meaning: the submission says which to keep."""
    with pytest.raises(InvalidDefinition) as caught:
        parse_submission(HEADER + "schedule:\n  every: PT1M\n  cron: '*/5 * * * *'\n" + BODY)
    assert caught.value.problems[0].message == (
        "schedule sets every and cron; set only one of every, cron and after"
    )


def test_good_schedules_pass() -> None:
    """Five- and six-field cron, every and after are accepted."""
    for schedule in ("cron: '*/5 * * * *'", "cron: '0 */5 * * * *'", "every: PT10S", "after: PT1M"):
        submission = parse_submission(HEADER + f"schedule:\n  {schedule}\n" + BODY)
        assert schedule_problems(submission.document) == []
