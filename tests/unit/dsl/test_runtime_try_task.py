"""try/catch: filters, when/exceptWhen, ``as``, catch.do and retries."""

from __future__ import annotations

import trio.testing

from tests.unit.dsl.runtime_support import lifecycle_types, run
from workflow_orchestrator.dsl.errors import Problem
from workflow_orchestrator.dsl.runtime import InMemoryEffects
from workflow_orchestrator.dsl.runtime._try_task import matches_filter

RAISE_503 = """
do:
  - guarded:
      try:
        - fail:
            raise:
              error: {type: https://x/unavailable, status: 503, title: Unavailable}
      catch:
%s
"""


def test_filter_matches_every_given_property() -> None:
    """errors.with matches when every property equals the error's (details is detail)."""
    problem = Problem(type="https://x/a", status=503, detail="down", instance="/do/0/t")
    assert matches_filter(problem, {"status": 503, "details": "down"})
    assert matches_filter(problem, {})
    assert not matches_filter(problem, {"status": 500})
    assert not matches_filter(problem, {"instance": "/do/1/t"})


async def test_caught_error_is_bound_under_as_for_catch_do() -> None:
    """catch.do sees the error under the ``as`` name; its output is the try's output."""
    result, _ = await run(
        RAISE_503
        % """        errors: {with: {status: 503}}
        as: problem
        do:
          - note:
              set:
                handled: ${ $problem.title }
                where: ${ $problem.instance }
""",
    )
    assert result.output == {"handled": "Unavailable", "where": "/do/0/guarded/try/0/fail"}


async def test_catch_without_do_swallows_the_error() -> None:
    """A matching catch without ``do`` completes with the try task's input."""
    result, _ = await run(RAISE_503 % "        errors: {with: {status: 503}}\n", {"kept": 1})
    assert result.status == "completed"
    assert result.output == {"kept": 1}


async def test_except_when_lets_the_error_through() -> None:
    """exceptWhen true re-raises the error uncaught."""
    result, _ = await run(
        RAISE_503
        % "        exceptWhen: ${ $error.status == 503 }\n        do:\n          - x: {set: {a: 1}}\n"
    )
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.status == 503


async def test_non_matching_filter_faults(autojump_clock: trio.testing.MockClock) -> None:
    """An error that does not match the filter is not caught (nor retried)."""
    result, effects = await run(
        RAISE_503 % "        errors: {with: {status: 404}}\n        retry: {delay: PT1S}\n"
    )
    assert result.status == "faulted"
    assert "task.retried /do/0/guarded" not in lifecycle_types(effects)


async def test_retry_attempts_and_delays_are_recorded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each retry records its attempt and absolute due time in the try task's frame."""
    effects = InMemoryEffects(record_snapshots=True)
    result, _ = await run(
        RAISE_503 % "        retry:\n          delay: PT2S\n          backoff: {exponential: {}}\n"
        "          limit: {attempt: {count: 2}}\n",
        effects=effects,
    )
    assert result.status == "faulted"
    frames = [s["frames"].get("/do/0/guarded") for s in effects.snapshots]
    dues = [f["due"] for f in frames if f and "due" in f]
    assert dues[0] == "2026-01-01T00:00:02Z"
    assert dues[-1] == "2026-01-01T00:00:06Z"
    assert effects.now().isoformat() == "2026-01-01T00:00:06+00:00"


async def test_jitter_adds_a_recorded_random_delay(autojump_clock: trio.testing.MockClock) -> None:
    """Jitter adds between ``from`` and ``to`` to the delay, taken from the effects' random."""
    result, effects = await run(
        RAISE_503
        % "        retry:\n          delay: PT1S\n          jitter: {from: PT1S, to: PT3S}\n"
        "          limit: {attempt: {count: 1}}\n"
    )
    assert result.status == "faulted"
    elapsed = (effects.now() - InMemoryEffects().now()).total_seconds()
    assert 2.0 <= elapsed <= 4.0


async def test_each_attempt_has_its_own_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """limit.attempt.duration times out a slow attempt, which is then retried."""
    result, effects = await run(
        """
        do:
          - guarded:
              try:
                - slow: {wait: PT1M}
              catch:
                errors:
                  with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout}
                retry:
                  delay: PT1S
                  limit: {attempt: {count: 1, duration: PT5S}}
        """
    )
    assert result.error is not None
    assert result.error.status == 408
    assert effects.now().isoformat() == "2026-01-01T00:00:11+00:00"


async def test_error_inside_a_timed_task_is_caught(autojump_clock: trio.testing.MockClock) -> None:
    """An error raised by a task that has a timeout is a plain workflow error for ``catch``."""
    result, _ = await run(
        """
        do:
          - guarded:
              try:
                - boom:
                    timeout: {after: PT5S}
                    raise:
                      error: {type: https://x/e, status: 503}
              catch:
                errors: {with: {status: 503}}
                do:
                  - recover: {set: {caught: true}}
        """
    )
    assert result.output == {"caught": True}
