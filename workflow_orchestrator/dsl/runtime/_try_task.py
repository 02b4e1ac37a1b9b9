"""The ``try`` task: catch filters, retries with backoff and jitter, and ``catch.do``.

A `LimitExceeded` error (an instance over one of its ``workflows.limits``) is never caught.

Frame of a try task: ``attempt`` (retries so far), ``firstAt`` (when the first attempt started,
for ``limit.duration``), ``due`` (the absolute time of a pending retry) and ``caught`` (the
error being handled by ``catch.do``). Each attempt runs the ``try`` list under its own execution
key (``.../try#2``) so the attempts' frames and lifecycle event ids never collide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.errors import Problem, WorkflowError, canonical_error_type
from workflow_orchestrator.dsl.model import RetryPolicy, TryTask
from workflow_orchestrator.dsl.runtime._arguments import custom_scope
from workflow_orchestrator.dsl.runtime._limits import LimitExceeded
from workflow_orchestrator.dsl.runtime._runner import Outcome, Runner
from workflow_orchestrator.dsl.runtime._time import iso, parse_iso, plus_seconds


def matches_filter(problem: Problem, errors: Mapping[str, Any]) -> bool:
    """Whether ``problem`` has every property of ``errors.with`` (types compared canonically)."""
    for name, expected in errors.items():
        if name == "type":
            if canonical_error_type(str(expected)) != canonical_error_type(problem.type):
                return False
        elif name == "status":
            if expected != problem.status:
                return False
        else:
            actual = getattr(problem, "detail" if name == "details" else name, None)
            if expected != actual:
                return False
    return True


async def _accepts(
    runner: Runner,
    when: str | None,
    except_when: str | None,
    data: Any,
    args: Mapping[str, Any],
    where: str,
) -> bool:
    if when is not None and not await runner.condition(when, data, args, where):
        return False
    return except_when is None or not await runner.condition(except_when, data, args, where)


async def _retry_delay(
    runner: Runner,
    policy: RetryPolicy,
    attempt: int,
    data: Any,
    args: Mapping[str, Any],
    where: str,
) -> float | None:
    """Seconds to wait before retry ``attempt + 1``, or None when the limits are reached."""
    if policy.attempt_count is not None and attempt >= policy.attempt_count:
        return None
    base = 0.0
    if policy.delay is not None:
        base = await runner.seconds(policy.delay, data, args, where + "/delay")
    if policy.backoff == "linear":
        delay = base * (attempt + 1)
    elif policy.backoff == "exponential":
        delay = base * (2**attempt)
    else:
        delay = base
    if policy.jitter_from is not None and policy.jitter_to is not None:
        low = await runner.seconds(policy.jitter_from, data, args, where + "/jitter/from")
        high = await runner.seconds(policy.jitter_to, data, args, where + "/jitter/to")
        delay += low + (high - low) * runner.effects.random()
    return delay


async def run_try(
    runner: Runner, task: TryTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Run ``try``; a matching error is retried per policy, then handled by ``catch.do``."""
    frames = runner.state.frames
    catch = task.catch
    scope = custom_scope(args)
    where = task.reference + "/catch"
    policy = catch.retry
    frame = frames.get(key)
    if frame is None:
        frame = {"attempt": 0, "firstAt": iso(runner.now())}
        frames[key] = frame
    while "caught" not in frame:
        attempt = frame["attempt"]
        if "due" in frame:
            await runner.sleep_until(parse_iso(frame["due"]), key=key + "/!retry", kind="retry")
            frame = {k: v for k, v in frame.items() if k != "due"}
            frames[key] = frame
        body_key = f"{key}/try#{attempt}" if attempt else f"{key}/try"
        try:
            if policy is not None and policy.attempt_duration is not None:
                limit = await runner.seconds(policy.attempt_duration, data, args, where)

                async def attempt_body(body_key: str = body_key) -> Outcome:
                    out, ended = await runner.run_list(task.try_, body_key, data, scope)
                    return out, "end" if ended else None

                return await runner.with_timeout(body_key, limit, task.reference, attempt_body)
            output, ended = await runner.run_list(task.try_, body_key, data, scope)
            return output, "end" if ended else None
        except LimitExceeded:
            raise  # a budget a workflow could catch would be no budget
        except WorkflowError as exc:
            problem = exc.problem
            if not matches_filter(problem, catch.errors):
                raise
            error_args = {**args, catch.as_: problem.to_json()}
            if not await _accepts(runner, catch.when, catch.except_when, data, error_args, where):
                raise
            runner.state.drop_frames(body_key)
            if policy is not None:
                delay = None
                if await _accepts(
                    runner, policy.when, policy.except_when, data, error_args, where + "/retry"
                ):
                    delay = await _retry_delay(
                        runner, policy, attempt, data, error_args, where + "/retry"
                    )
                if delay is not None and policy.total_duration is not None:
                    total = await runner.seconds(policy.total_duration, data, args, where)
                    first = parse_iso(frame["firstAt"])
                    if plus_seconds(runner.now(), delay) > plus_seconds(first, total):
                        delay = None
                if delay is None:
                    raise
                due = plus_seconds(runner.now(), delay)
                frame = {**frame, "attempt": attempt + 1, "due": iso(due)}
                frames[key] = frame
                at = iso(runner.now())
                runner.lifecycle(
                    f"{key}#{attempt + 1}",
                    "task.retried",
                    at,
                    {"workflow": runner.qualified_name, "task": task.reference, "retriedAt": at},
                )
                continue
            frame = {**frame, "caught": problem.to_json()}
            frames[key] = frame
    if catch.do is None:
        return data, None
    scope[catch.as_] = frame["caught"]
    output, ended = await runner.run_list(catch.do, key + "/catch/do", data, scope)
    return output, "end" if ended else None
