"""``call: asyncapi``: publishing a message, or consuming messages of a subscription.

The AsyncAPI document is fetched through the HTTP effect like an OpenAPI document (cached per
run, size-capped by ``workflows.maxDocumentSize``); ``_asyncapi_document`` finds the server,
channel address and bindings the call targets. The broker work is the adapter's, through
`Effects.call_service` (publish) and `Effects.consume_messages` (subscribe), with
``ServiceCall(kind="asyncapi")`` whose arguments are plain JSON::

    {"action": "publish" | "subscribe", "protocol": "amqp", "url": "amqp://host:5672/vh",
     "address": "<channel address>", "bindings": {"server", "channel", "operation",
     "message"}, "contentType": "application/json" | null,
     "message": {"payload", "headers"},                 (publish only)
     "authorization": {"scheme": "Basic" | "Bearer", "parameter": "..."}}   (when set)

The request's ``key`` (instance id + execution key) is the message's idempotency key: a publish
re-executed after a crash carries the same one, so consumers can drop the copy.

A subscription's messages (``{"payload", "headers", "correlationId"}``) are handled here, one at
a time, in order:

- ``filter`` is evaluated on each message (``$context`` and the task's arguments in scope); a
  message it does not accept is dropped and not counted.
- Before waiting for each message: stop once ``amount`` messages were kept, when ``until`` is
  true (evaluated before the first message too), or when ``while`` is false (evaluated once a
  message was kept). Both see the last kept message as ``.`` (null before the first) and the
  kept messages as ``$context.consumedMessages`` (also as ``$context.messages`` unless the
  context has that key).
- ``for`` ends the consumption at an absolute due time (a durable timer of the effects): the
  message being processed is finished, no other is awaited. A subscription the broker ends
  ends the consumption too.
- ``foreach`` runs its tasks for each kept message before the next is read (so messages wait
  in the adapter's bounded buffer, FIFO); the output is then the iterations' outputs.
- At most ``RuntimeOptions.asyncapi_max_messages`` messages are kept
  (``workflows.calls.asyncapi.maxMessages``): a subscription still consuming past it faults
  with a limit error.

Durability: the kept messages and the iterations' outputs are the task's frame, checkpointed
after each message; a resumed task finishes an interrupted iteration, checks the stop
conditions and subscribes again (what was published while it was not subscribed is not seen).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import trio

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.expressions import is_runtime_expression
from workflow_orchestrator.dsl.model import CallTask, Duration, InvalidDuration, duration_seconds
from workflow_orchestrator.dsl.runtime._asyncapi_document import (
    AsyncApiTarget,
    correlation_id,
    resolve_target,
)
from workflow_orchestrator.dsl.runtime._auth import authorize
from workflow_orchestrator.dsl.runtime._documents import fetch_document
from workflow_orchestrator.dsl.runtime._effects import ServiceCall
from workflow_orchestrator.dsl.runtime._event_tasks import run_iteration
from workflow_orchestrator.dsl.runtime._limits import LIMIT_EXCEEDED, LimitExceeded
from workflow_orchestrator.dsl.runtime._runner import Runner

__all__ = ["call_asyncapi"]

_MAX_MESSAGES_SETTING = "workflows.calls.asyncapi.maxMessages"


def _error(kind: str, detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.standard(kind, detail=detail, instance=where))


@attrs.define(kw_only=True)
class _Progress:
    """The messages a subscription kept and the outputs of their iterations (its frame)."""

    messages: list[Any] = attrs.field(factory=list)
    outputs: list[Any] = attrs.field(factory=list)

    @classmethod
    def load(cls, frame: Mapping[str, Any] | None) -> _Progress:
        if frame is None:
            return cls()
        return cls(messages=list(frame["messages"]), outputs=list(frame["outputs"]))

    def frame(self) -> dict[str, Any]:
        # Fresh lists each time: frames are never mutated in place (see _state).
        return {"messages": list(self.messages), "outputs": list(self.outputs)}


@attrs.define(kw_only=True)
class _Expiry:
    """``consume.for``: set once the due time passed; cancels the wait for a message."""

    expired: bool = False
    waiting: trio.CancelScope | None = None

    def expire(self) -> None:
        self.expired = True
        if self.waiting is not None:
            self.waiting.cancel()


def _document_uri(with_: Mapping[str, Any], where: str) -> str:
    document = with_.get("document")
    endpoint = document.get("endpoint") if isinstance(document, Mapping) else None
    if isinstance(endpoint, Mapping):
        endpoint = endpoint.get("uri")
    if not isinstance(endpoint, str):
        raise _error(ErrorType.CONFIGURATION, "the AsyncAPI document needs an endpoint URI", where)
    return endpoint


async def _target(
    runner: Runner, with_: Mapping[str, Any], action: str, where: str
) -> AsyncApiTarget:
    uri = _document_uri(with_, where)
    document = await fetch_document(
        runner.effects,
        runner.options,
        runner.documents,
        uri,
        what=f"the AsyncAPI document {uri}",
        accept="application/json, application/yaml",
        where=where,
    )
    server = with_.get("server")
    protocol = with_.get("protocol")
    operation = with_.get("operation")
    channel = with_.get("channel")
    return resolve_target(
        document,
        uri=uri,
        operation=str(operation) if operation is not None else None,
        channel=str(channel) if channel is not None else None,
        server=server if isinstance(server, Mapping) else None,
        protocol=str(protocol) if protocol is not None else None,
        action=action,
        where=where,
    )


def _inbound(message: Any, target: AsyncApiTarget) -> dict[str, Any]:
    """A received message in the DSL's shape, its correlation id per the document."""
    received = message if isinstance(message, Mapping) else {"payload": message}
    out: dict[str, Any] = {
        "payload": received.get("payload"),
        "headers": dict(received.get("headers") or {}),
    }
    found = received.get("correlationId")
    if target.correlation is not None:
        located = correlation_id(target.correlation, out)
        if located is not None:
            found = located
    if found is not None:
        out["correlationId"] = found if isinstance(found, str) else str(found)
    return out


async def call_asyncapi(
    runner: Runner, task: CallTask, key: str, data: Any, args: dict[str, Any]
) -> Any:
    """Perform ``call: asyncapi``: publish ``message`` or consume per ``subscription``."""
    where = task.reference
    raw = task.with_
    # A subscription's expressions are evaluated per message, not up front.
    with_ = await runner.evaluate_template(
        {k: v for k, v in raw.items() if k != "subscription"}, data, args, where
    )
    subscription = raw.get("subscription")
    action = "subscribe" if isinstance(subscription, Mapping) else "publish"
    target = await _target(runner, with_, action, where)
    arguments: dict[str, Any] = {
        "action": action,
        "protocol": target.protocol,
        "url": target.url,
        "address": target.address,
        "bindings": target.bindings,
        "contentType": target.content_type,
    }
    policy = with_.get("authentication")
    if isinstance(policy, str):
        policy = {"use": policy}
    if isinstance(policy, Mapping) and policy:
        _, descriptor = await authorize(runner, policy, data, args, where, key)
        args["authorization"] = descriptor
        arguments["authorization"] = descriptor
    request_key = f"{runner.state.instance_id}{key}"
    if not isinstance(subscription, Mapping):
        message = with_.get("message")
        message = message if isinstance(message, Mapping) else {}
        headers = dict(message.get("headers") or {})
        published = {"payload": message.get("payload"), "headers": headers}
        arguments["message"] = published
        await runner.effects.call_service(
            ServiceCall(kind="asyncapi", arguments=arguments, key=request_key, task_ref=where)
        )
        return published
    request = ServiceCall(kind="asyncapi", arguments=arguments, key=request_key, task_ref=where)
    return await _Subscription(
        runner=runner,
        task=task,
        key=key,
        spec=subscription,
        target=target,
        data=data,
        args=args,
    ).run(request)


@attrs.define(kw_only=True)
class _Subscription:
    """One subscription of a task: its stop conditions and its loop (see the module doc)."""

    runner: Runner
    task: CallTask
    key: str
    spec: Mapping[str, Any]
    target: AsyncApiTarget
    data: Any
    args: dict[str, Any]
    progress: _Progress = attrs.field(factory=_Progress)
    amount: int | None = None

    @property
    def where(self) -> str:
        return self.task.reference + "/with/subscription"

    def _consume(self) -> Mapping[str, Any]:
        consume = self.spec.get("consume")
        return consume if isinstance(consume, Mapping) else {}

    def _now_args(self) -> dict[str, Any]:
        return {**self.args, "context": self.runner.state.context}

    def _lifetime_args(self) -> dict[str, Any]:
        context = self.runner.state.context
        consumed = list(self.progress.messages)
        extended = dict(context) if isinstance(context, Mapping) else {}
        extended.setdefault("messages", consumed)
        extended["consumedMessages"] = consumed
        return {**self.args, "context": extended}

    async def _amount(self) -> int | None:
        value = self._consume().get("amount")
        if isinstance(value, str):
            value = await self.runner.evaluate(value, self.data, self.args, self.where)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _error(
                ErrorType.VALIDATION,
                f"consume.amount must be a non-negative integer, not {value!r}",
                self.where + "/consume/amount",
            )
        return value

    async def _seconds(self) -> float | None:
        value = self._consume().get("for")
        if value is None:
            return None
        where = self.where + "/consume/for"
        if isinstance(value, str) and is_runtime_expression(value):
            return await self.runner.seconds(
                Duration(expression=value), self.data, self.args, where
            )
        try:
            return duration_seconds(value)
        except InvalidDuration as exc:
            raise _error(ErrorType.VALIDATION, str(exc), where) from None

    async def _done(self) -> bool:
        """Whether consumption stops before the next message (raises past the limit)."""
        kept = self.progress.messages
        if self.amount is not None and len(kept) >= self.amount:
            return True
        consume = self._consume()
        last = kept[-1] if kept else None
        until = consume.get("until")
        runner = self.runner
        if isinstance(until, str) and await runner.condition(
            until, last, self._lifetime_args(), self.where + "/consume/until"
        ):
            return True
        while_ = consume.get("while")
        if (
            isinstance(while_, str)
            and kept
            and not await runner.condition(
                while_, last, self._lifetime_args(), self.where + "/consume/while"
            )
        ):
            return True
        limit = runner.options.asyncapi_max_messages
        if 0 < limit <= len(kept):
            raise LimitExceeded(
                Problem(
                    type=LIMIT_EXCEEDED,
                    status=400,
                    title="Limit Exceeded",
                    detail=f"the subscription kept {len(kept):,} messages and would consume "
                    f"more, over the limit {_MAX_MESSAGES_SETTING}; bound it with "
                    "consume.amount, while, until or for, or raise the setting",
                    instance=self.where,
                )
            )
        return False

    async def _iterate(self) -> None:
        """Run ``foreach`` for the kept messages that have not been through it yet."""
        foreach = self.task.foreach
        progress = self.progress
        runner = self.runner
        while foreach is not None and len(progress.outputs) < len(progress.messages):
            index = len(progress.outputs)
            output = await run_iteration(
                runner,
                foreach,
                self.key,
                index,
                progress.messages[index],
                self._now_args(),
                self.where + "/foreach",
            )
            progress.outputs.append(output)
            runner.state.frames[self.key] = progress.frame()
            await runner.effects.checkpoint(runner.state)

    async def _next(self, messages: AsyncIterator[Any], expiry: _Expiry) -> Any | None:
        """The next message; None when ``for`` expired or the subscription ended."""
        if expiry.expired:
            return None
        with trio.CancelScope() as scope:
            expiry.waiting = scope
            try:
                return await anext(messages)
            except StopAsyncIteration:
                return None
            finally:
                expiry.waiting = None
        return None

    async def _loop(self, messages: AsyncIterator[Any], expiry: _Expiry) -> None:
        runner = self.runner
        filter_ = self.spec.get("filter")
        while not await self._done():
            received = await self._next(messages, expiry)
            if received is None:
                return
            message = _inbound(received, self.target)
            if isinstance(filter_, str) and not await runner.condition(
                filter_, message, self._now_args(), self.where + "/filter"
            ):
                continue
            self.progress.messages.append(message)
            runner.state.frames[self.key] = self.progress.frame()
            await runner.effects.checkpoint(runner.state)
            await self._iterate()

    async def run(self, request: ServiceCall) -> Any:
        """Consume until a stop condition; the kept messages (or the iterations' outputs)."""
        runner = self.runner
        self.progress = _Progress.load(runner.state.frames.get(self.key))
        self.amount = await self._amount()
        seconds = await self._seconds()
        await self._iterate()
        if not await self._done():
            due = None
            if seconds is not None:
                due = await runner.deadline(self.key + "/!for", seconds)
            runner.state.frames[self.key] = self.progress.frame()
            async with runner.effects.consume_messages(request) as messages:
                expiry = _Expiry()
                if due is None:
                    await self._loop(messages, expiry)
                else:
                    await self._timed(messages, expiry, due)
        return self.progress.outputs if self.task.foreach is not None else self.progress.messages

    async def _timed(self, messages: AsyncIterator[Any], expiry: _Expiry, due: Any) -> None:
        """``_loop`` beside the timer of ``consume.for``; workflow errors come out plain."""
        failure: list[WorkflowError] = []
        async with trio.open_nursery() as nursery:

            async def timer() -> None:
                try:
                    await self.runner.effects.sleep_until(
                        due, key=self.key + "/!for", kind="timeout"
                    )
                except WorkflowError as exc:
                    failure.append(exc)
                    nursery.cancel_scope.cancel()
                    return
                expiry.expire()

            nursery.start_soon(timer)
            try:
                await self._loop(messages, expiry)
            except WorkflowError as exc:
                failure.append(exc)
            nursery.cancel_scope.cancel()
        if failure:
            raise failure[0]
