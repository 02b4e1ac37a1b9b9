"""``emit`` and ``listen``.

Emitted events get an id derived from the instance and the task's execution key, so emitting
again after a crash reuses the id (consumers deduplicate on ``source`` + ``id``).

A listen task keeps a frame with the events consumed so far (in ``read`` form), which filter
each one satisfied, the correlation values fixed by the first event, and the keys of events it
rejected. Consumed event keys are also recorded instance-wide (`ExecutionState.consumed`) so one
event is consumed once per instance.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import attrs

from workflow_orchestrator.dsl.expressions import is_runtime_expression
from workflow_orchestrator.dsl.model import (
    ConsumptionStrategy,
    EmitTask,
    EventFilter,
    ListenTask,
    SubscriptionIterator,
)
from workflow_orchestrator.dsl.runtime._arguments import custom_scope
from workflow_orchestrator.dsl.runtime._effects import (
    CloudEvent,
    ListenRequest,
    SubscriptionFilter,
)
from workflow_orchestrator.dsl.runtime._runner import Outcome, Runner
from workflow_orchestrator.dsl.runtime._time import iso

_NAMESPACE = uuid.UUID("6f1c6f3e-5b1e-4a0c-9a55-2f8c1b8c1e01")


async def run_emit(
    runner: Runner, task: EmitTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Emit the CloudEvent; the task's output is the event as emitted."""
    attributes = dict(await runner.evaluate_template(task.event, data, args, task.reference))
    attributes.setdefault("id", str(uuid.uuid5(_NAMESPACE, runner.state.instance_id + key)))
    attributes.setdefault("specversion", "1.0")
    attributes.setdefault("time", iso(runner.now()))
    if "data" in attributes:
        attributes.setdefault("datacontenttype", "application/json")
    event = CloudEvent(attributes=attributes)
    runner.state.history_rows += 1  # an emitted event is a history row of the instance
    await runner.effects.emit(event)
    return event.to_json(), None


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


async def with_matches(
    with_: Mapping[str, Any],
    attributes: Mapping[str, Any],
    evaluate: Callable[[str, Any], Awaitable[Any]],
) -> bool:
    """Whether ``attributes`` satisfy an event filter's ``with``: a static value must be
    contained in the attribute (mappings recursively, other values equal), a runtime expression
    evaluated on the attribute (``evaluate(expression, value)``) must give true."""
    for name, expected in with_.items():
        actual = attributes.get(name)
        if is_runtime_expression(expected):
            if await evaluate(expected, actual) is not True:
                return False
        elif not _subset(expected, actual):
            return False
    return True


def _static(event_filter: EventFilter) -> dict[str, Any]:
    return {k: v for k, v in event_filter.with_.items() if not is_runtime_expression(v)}


async def _matches(
    runner: Runner,
    event_filter: EventFilter,
    event: CloudEvent,
    correlation: dict[str, Any],
    data: Any,
    args: Mapping[str, Any],
    where: str,
) -> bool:
    attributes = event.attributes

    async def evaluate(expression: str, value: Any) -> Any:
        return await runner.evaluate(expression, value, args, where)

    if not await with_matches(event_filter.with_, attributes, evaluate):
        return False
    for name, rule in event_filter.correlate.items():
        value = await runner.evaluate(rule["from"], dict(attributes), args, where)
        if "expect" in rule:
            expect = rule["expect"]
            if isinstance(expect, str) and (is_runtime_expression(expect)):
                expect = await runner.evaluate(expect, data, args, where)
            if value != expect:
                return False
        elif name in correlation and correlation[name] != value:
            return False
        correlation[name] = value
    return True


async def _subscription(
    runner: Runner,
    event_filter: EventFilter,
    correlation: Mapping[str, Any],
    data: Any,
    args: Mapping[str, Any],
    where: str,
) -> SubscriptionFilter:
    """The indexable form of ``event_filter``: static attributes and known correlation values."""
    pairs = []
    expected: dict[str, Any] = {}
    for name, rule in sorted(event_filter.correlate.items()):
        pairs.append((name, str(rule["from"])))
        if "expect" in rule:
            expect = rule["expect"]
            if isinstance(expect, str) and is_runtime_expression(expect):
                expect = await runner.evaluate(expect, data, args, where)
            expected[name] = expect
        elif name in correlation:
            expected[name] = correlation[name]
    return SubscriptionFilter(
        attributes=_static(event_filter), correlate=tuple(pairs), expected=expected
    )


async def _subscriptions(
    runner: Runner,
    watched: list[EventFilter],
    progress: _Progress,
    data: Any,
    args: Mapping[str, Any],
    where: str,
) -> tuple[SubscriptionFilter, ...]:
    correlation = dict(progress.correlation)
    found = [await _subscription(runner, f, correlation, data, args, where) for f in watched]
    return tuple(found) or (SubscriptionFilter(attributes={}),)


def _read(event: CloudEvent, mode: str) -> Any:
    if mode == "envelope":
        return event.to_json()
    return event.attributes.get("data")


def _complete(strategy: ConsumptionStrategy, matched: list[int]) -> bool:
    if strategy.mode == "all":
        return set(range(len(strategy.filters))) <= set(matched)
    if strategy.mode == "one":
        return bool(matched)
    return bool(matched) and strategy.until is None and strategy.until_expression is None


@attrs.define(kw_only=True)
class _Progress:
    """What a listen task has consumed and processed; saved as its frame after each step."""

    events: list[Any] = attrs.field(factory=list)
    matched: list[int] = attrs.field(factory=list)
    correlation: dict[str, Any] = attrs.field(factory=dict)
    rejected: list[str] = attrs.field(factory=list)
    until_matched: list[int] = attrs.field(factory=list)
    outputs: list[Any] = attrs.field(factory=list)

    @classmethod
    def load(cls, frame: Mapping[str, Any] | None) -> _Progress:
        if frame is None:
            return cls()
        return cls(
            events=list(frame["events"]),
            matched=list(frame["matched"]),
            correlation=dict(frame["correlation"]),
            rejected=list(frame["rejected"]),
            until_matched=list(frame["untilMatched"]),
            outputs=list(frame["outputs"]),
        )

    def frame(self) -> dict[str, Any]:
        # Fresh lists each time: frames are never mutated in place (see _state).
        return {
            "events": list(self.events),
            "matched": list(self.matched),
            "correlation": dict(self.correlation),
            "rejected": list(self.rejected),
            "untilMatched": list(self.until_matched),
            "outputs": list(self.outputs),
        }


async def run_iteration(
    runner: Runner,
    foreach: SubscriptionIterator,
    key: str,
    index: int,
    item: Any,
    args: Mapping[str, Any],
    where: str,
) -> Any:
    """Run a subscription's ``foreach`` for ``item``, the ``index``-th consumed (an event of a
    ``listen``, a message of an AsyncAPI subscription): its tasks with ``item``/``at`` in
    scope, then ``output.as`` and ``export.as``; returns the iteration's output. The tasks run
    under the execution key ``<key>/foreach[<index>]``, so a resumed iteration continues."""
    scope = {**custom_scope(args), foreach.item: item, foreach.at: index}
    output = item
    if foreach.do is not None:
        body_key = f"{key}/foreach[{index}]"
        output, _ = await runner.run_list(foreach.do, body_key, item, scope)
        runner.state.drop_frames(body_key)
    item_args = {**args, **scope}
    if foreach.output is not None and foreach.output.expression is not None:
        output = await runner.transform(foreach.output.expression, output, item_args, where)
    if foreach.export is not None and foreach.export.expression is not None:
        runner.state.context = await runner.transform(
            foreach.export.expression, output, {**item_args, "output": output}, where
        )
    return output


async def _process(
    runner: Runner, task: ListenTask, key: str, progress: _Progress, args: dict[str, Any]
) -> None:
    """Run ``foreach`` for the next consumed event that has not been processed yet."""
    foreach = task.foreach
    assert foreach is not None
    index = len(progress.outputs)
    output = await run_iteration(
        runner, foreach, key, index, progress.events[index], args, task.reference + "/foreach"
    )
    progress.outputs.append(output)
    runner.state.frames[key] = progress.frame()
    await runner.effects.checkpoint(runner.state)


async def run_listen(
    runner: Runner, task: ListenTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Consume events per the strategy; the output is the list of consumed events.

    With ``foreach``, each event is processed as soon as it is consumed (so ``any`` with
    ``until`` can run for ever) and the output is the list of the iterations' outputs.
    However the task ends, the effects are told (``listen_ended``): a durable runtime keeps
    delivering events to a listen that is running its iterations until then.
    """
    try:
        return await _consume(runner, task, key, data, args)
    finally:
        runner.effects.listen_ended(task.reference)


async def _consume(
    runner: Runner, task: ListenTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    state = runner.state
    frames = state.frames
    where = task.reference + "/listen"
    progress = _Progress.load(frames.get(key))
    strategy = task.to
    until = strategy.until
    streaming = task.foreach is not None
    while streaming and len(progress.outputs) < len(progress.events):
        await _process(runner, task, key, progress, args)
    while not _complete(strategy, progress.matched):
        if (
            strategy.until_expression is not None
            and progress.events
            and await runner.condition(
                strategy.until_expression, progress.events, args, where + "/until"
            )
        ):
            break
        if (
            until is not None
            and progress.until_matched
            and _complete(until, progress.until_matched)
        ):
            break
        candidates = [
            (index, f)
            for index, f in enumerate(strategy.filters)
            if strategy.mode != "all" or index not in progress.matched
        ]
        until_filters = list(enumerate(until.filters)) if until is not None else []
        watched = [f for _, f in candidates + until_filters]
        request = ListenRequest(
            filters=tuple(_static(f) for f in watched) or ({},),
            subscribe=partial(_subscriptions, runner, watched, progress, data, args, where),
            exclude=frozenset(state.consumed) | frozenset(progress.rejected),
            task_ref=task.reference,
            instance_id=state.instance_id,
        )
        frames[key] = progress.frame()
        async with runner.waiting():
            event = await runner.effects.wait_event(request)
        hit = None
        trial = dict(progress.correlation)
        for index, event_filter in candidates:
            if await _matches(runner, event_filter, event, trial, data, args, where):
                hit = index
                break
        if hit is None and not strategy.filters and strategy.mode == "any":
            hit = -1
        if hit is not None:
            progress.correlation = trial
            progress.matched.append(hit)
            progress.events.append(_read(event, task.read))
            state.consumed.append(event.key)
            frames[key] = progress.frame()
            if streaming:
                await _process(runner, task, key, progress, args)
            continue
        for index, event_filter in until_filters:
            if await _matches(
                runner, event_filter, event, dict(progress.correlation), data, args, where
            ):
                progress.until_matched.append(index)
                state.consumed.append(event.key)
                break
        else:
            progress.rejected.append(event.key)
    frames[key] = progress.frame()
    return (progress.outputs if streaming else progress.events), None
