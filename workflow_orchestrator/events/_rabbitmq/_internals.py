"""The aiormq internals under the adapter's two fast paths: named, checked, and fallen back from.

aio-pika's per-message cost (a coroutine, a task and a future per publication; an
``IncomingMessage`` and a task per delivery; on trio-asyncio every task step is a pass of the
Trio scheduler) would dominate the adapter, so its hot paths go below it, to the aiormq channel
that aio-pika's robust channel wraps (``get_underlay_channel()``, public):

- consume: ``take_deliveries`` replaces the channel's ``_on_deliver_frame`` (on that channel
  object only) with one that reads the delivery as aiormq does (``_get_frame`` for the content
  header, ``_read_content`` for the body) and hands it to the inbox directly, without aiormq's
  task per delivery. The deliveries of other consumer tags go to aiormq's own handler.
- publish: ``write_batch`` is aiormq's ``basic_publish`` for a whole batch: holding the channel's
  ``lock`` it takes sequence numbers from ``delivery_tag``, registers a plain future per message
  in ``confirmations`` (aiormq's confirm handler resolves them) and puts the frames of up to
  ``WRITE_CHUNK`` messages at a time (``ChannelFrame.marshall``) on ``write_queue``;
  ``wait_for_confirmations`` waits for those futures or for the channel's ``closing`` observer.

``CONSUME_INTERNALS`` and ``PUBLISH_INTERNALS`` name every internal each path relies on;
``missing_for_consume`` and ``missing_for_publish`` check them on a live channel (callers check
each channel once). When one
is missing or changed, the path falls back to a public API and ``report_fallback`` logs one
WARNING per path and process naming the internals and the installed aiormq:

- consume: aiormq's public ``basic_consume`` callback (``Inbox.on_message``) receives every
  delivery (a task per delivery: consume+ack 3,800 msg/s against 5,500 with the fast path in
  ``benchmarks/rabbitmq.py`` on the loaded 2-core box);
- publish: aio-pika's public ``Exchange.publish``, one message after the other, each waiting
  for its confirmation (a broker round trip per message: 450-550 msg/s against 5,500).

``CONSUMER_HOOKS`` are two more aiormq attributes the consumer uses when they are there (to see
that it consumes already, and that the broker cancelled it); without them it consumes again
only when the channel reopens.

Checked against aiormq 7.2.4 (aio-pika 10.2.1, pamqp 4.0.1), hence the ranges in setup.cfg and
``tests/unit/events/test_rabbitmq_internals.py``, which fails naming the internal and the
installed version when one is gone. Two changes the names alone do not show: before 7.2.4
aiormq's reader bound its frame handlers when the channel opened, so the consume override was
ignored (``Inbox.on_message`` notices a delivery that should have bypassed it and reports the
fallback); before 7.1 ``Channel.closing`` was the channel's own future rather than an observer,
and cancelling it, as ``wait_for_confirmations`` does to stop observing, would close the channel
(``missing_internals`` checks that two reads give two futures).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import inspect
import logging
import uuid
from collections.abc import Callable, Coroutine, MutableMapping, Sequence
from typing import Any, Literal

import aiormq
import aiormq.abc
import aiormq.exceptions
import attrs
import pamqp.frame
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from workflow_orchestrator.events._rabbitmq._values import OutgoingMessage
from workflow_orchestrator.events._rabbitmq._wire import publication_bytes

__all__ = [
    "CHECKED_AIORMQ",
    "CONSUMER_HOOKS",
    "CONSUME_INTERNALS",
    "PUBLISH_INTERNALS",
    "Internal",
    "installed_version",
    "missing_for_consume",
    "missing_for_publish",
    "missing_internals",
    "missing_methods",
    "report_fallback",
    "take_deliveries",
    "wait_for_confirmations",
    "write_batch",
]

logger = logging.getLogger(__name__)

CHECKED_AIORMQ = "7.2.4"
# Messages per write to the connection's frame queue: big enough that a batch costs a few writes,
# small enough that one write does not hold the writer for long.
WRITE_CHUNK = 256
_MAX_SHORTSTR = 255
# aiormq's ChannelFrame is a dataclass holding the marshalled ``payload``: the publications
# ``_wire`` encodes go into one as they are (checked against 7.2.4; otherwise pamqp marshals).
_RAW_PAYLOAD = dataclasses.is_dataclass(aiormq.abc.ChannelFrame) and "payload" in {
    field.name for field in dataclasses.fields(aiormq.abc.ChannelFrame)
}
_ORIGINAL = "_workflow_orchestrator_original"

Shape = Literal["method", "attribute", "async context manager", "observer future"]


@attrs.frozen
class Internal:
    """One aiormq internal: ``owner.name`` is a method taking ``parameters`` (after ``self``;
    further ones must have defaults), an attribute of type ``kind`` on the live channel, an
    async context manager, or a property giving a new observer future on each read."""

    owner: Literal["Channel", "ChannelFrame"]
    name: str
    shape: Shape = "method"
    parameters: tuple[str, ...] = ()
    kind: type | tuple[type, ...] = object
    coroutine: bool = False

    def __str__(self) -> str:
        where = f"aiormq {self.owner}.{self.name}"
        if self.shape == "method":
            return f"{'async ' if self.coroutine else ''}{where}({', '.join(self.parameters)})"
        if self.shape == "attribute":
            kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
            return f"{where} ({' or '.join(k.__name__ for k in kinds)})"
        return f"{where} ({self.shape})"


CONSUME_INTERNALS = (
    Internal("Channel", "_on_deliver_frame", parameters=("frame",), coroutine=True),
    Internal("Channel", "_get_frame", coroutine=True),
    Internal("Channel", "_read_content", parameters=("frame", "header"), coroutine=True),
)
CONSUMER_HOOKS = (
    Internal("Channel", "consumers", shape="attribute", kind=dict),
    Internal("Channel", "on_consumer_cancel_callbacks", shape="attribute", kind=set),
)
PUBLISH_INTERNALS = (
    Internal("Channel", "lock", shape="async context manager"),
    Internal("Channel", "delivery_tag", shape="attribute", kind=int),
    Internal("Channel", "confirmations", shape="attribute", kind=MutableMapping),
    Internal("Channel", "write_queue", shape="attribute", kind=asyncio.Queue),
    Internal("Channel", "number", shape="attribute", kind=int),
    Internal("Channel", "max_content_size", shape="attribute", kind=int),
    Internal("Channel", "closing", shape="observer future"),
    Internal("ChannelFrame", "marshall", parameters=("channel_number", "frames")),
)

# The paths reported already (one WARNING per path and process).
_reported: set[str] = set()


def installed_version() -> str:
    """The installed aiormq's version (``unknown`` when its metadata is missing)."""
    try:
        return importlib.metadata.version("aiormq")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _method_fits(method: Any, internal: Internal) -> bool:
    if not callable(method) or internal.coroutine != inspect.iscoroutinefunction(method):
        return False
    try:
        parameters = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    if inspect.isfunction(method):  # read from the class: ``self`` comes first
        parameters = parameters[1:]
    wanted = len(internal.parameters)
    if tuple(p.name for p in parameters[:wanted]) != internal.parameters:
        return False
    optional = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return all(p.default is not p.empty or p.kind in optional for p in parameters[wanted:])


def _owner(channel_class: type, internal: Internal) -> Any:
    owner = aiormq.abc.ChannelFrame if internal.owner == "ChannelFrame" else channel_class
    return getattr(owner, internal.name, None)


def _present(channel: Any, internal: Internal) -> bool:
    if internal.shape == "method":
        return _method_fits(_owner(type(channel), internal), internal)
    if internal.shape == "attribute":
        return isinstance(getattr(channel, internal.name, None), internal.kind)
    if internal.shape == "async context manager":
        return hasattr(getattr(channel, internal.name, None), "__aenter__")
    if getattr(channel, "is_closed", True):
        return True  # a closed channel gives its own future; it is not written to anyway
    first, second = getattr(channel, internal.name, None), getattr(channel, internal.name, None)
    if not (isinstance(first, asyncio.Future) and isinstance(second, asyncio.Future)):
        return False
    if first is second:
        return False
    first.cancel()  # observers: cancelling one only stops observing
    second.cancel()
    return True


def missing_internals(channel: Any, internals: Sequence[Internal]) -> list[Internal]:
    """The internals of ``internals`` that ``channel`` (an aiormq channel) lacks or has in
    another shape; empty when a fast path may use it. No I/O."""
    return [internal for internal in internals if not _present(channel, internal)]


def missing_methods(channel_class: type, internals: Sequence[Internal]) -> list[Internal]:
    """The methods of ``internals`` that ``channel_class`` (aiormq's ``Channel`` or a subclass)
    lacks or has with other parameters: the part of ``missing_internals`` that needs no live
    channel."""
    methods = [internal for internal in internals if internal.shape == "method"]
    return [
        internal
        for internal in methods
        if not _method_fits(_owner(channel_class, internal), internal)
    ]


def missing_for_consume(channel: Any) -> list[Internal]:
    """``missing_internals`` of the consume fast path."""
    return missing_internals(channel, CONSUME_INTERNALS)


def missing_for_publish(channel: Any) -> list[Internal]:
    """``missing_internals`` of the publish fast path."""
    return missing_internals(channel, PUBLISH_INTERNALS)


def report_fallback(path: str, missing: Sequence[Internal], instead: str) -> None:
    """Log (once per ``path`` and process) that the fast ``path`` is off, naming ``missing``,
    the installed aiormq and what is used ``instead``."""
    if path in _reported:
        return
    _reported.add(path)
    logger.warning(
        "RabbitMQ %s fast path off: aiormq %s lacks or changed %s (checked against aiormq %s); "
        "%s; install the aiormq version setup.cfg names to get it back",
        path,
        installed_version(),
        ", ".join(map(str, missing)),
        CHECKED_AIORMQ,
        instead,
    )


def take_deliveries(
    channel: Any, tag: str, deliver: Callable[[aiormq.abc.DeliveredMessage], None]
) -> bool:
    """Hand the deliveries of consumer ``tag`` on ``channel`` to ``deliver`` (no I/O, called on
    the asyncio loop) straight from the channel's frame reader; False (and nothing changed)
    when ``CONSUME_INTERNALS`` are not all there.

    Installing it again (a new consumer tag on the same channel) replaces the previous override;
    the other consumer tags of the channel keep going to aiormq's own handler.
    """
    if missing_for_consume(channel):
        return False
    current = channel._on_deliver_frame
    original: Callable[[spec.Basic.Deliver], Coroutine[Any, Any, None]] = getattr(
        current, _ORIGINAL, current
    )
    get_frame = channel._get_frame
    read_content = channel._read_content

    async def on_deliver_frame(frame: spec.Basic.Deliver) -> None:
        if frame.consumer_tag != tag:
            await original(frame)
            return
        header = await get_frame()
        if not isinstance(header, ContentHeader):
            raise ValueError(f"Unexpected frame {header!r} instead of ContentHeader", header)
        deliver(await read_content(frame, header))

    setattr(on_deliver_frame, _ORIGINAL, original)
    setattr(channel, "_on_deliver_frame", on_deliver_frame)  # noqa: B010 (a method)
    return True


def _encoded(message: OutgoingMessage, channel: int, max_content_size: int) -> bytes:
    """The frames of ``message`` as bytes: written by ``_wire`` where it can, else marshalled
    by pamqp (its errors: ValueError, TypeError)."""
    encoded = publication_bytes(message, channel, max_content_size)
    if encoded is None:
        frames = _frames(message, max_content_size)
        encoded = b"".join(pamqp.frame.marshal(frame, channel) for frame in frames)
    return encoded


def _frames(message: OutgoingMessage, max_content_size: int) -> list[Any]:
    """The frames of one publication: Basic.Publish, the content header, the body frames."""
    if len(message.routing_key.encode()) > _MAX_SHORTSTR:
        raise ValueError(f"routing key longer than {_MAX_SHORTSTR} bytes")
    properties = spec.Basic.Properties(
        content_type=message.content_type,
        headers=message.headers or None,
        delivery_mode=2 if message.persistent else 1,
        priority=0,
        correlation_id=message.correlation_id,
        # aiormq gives every publication a message id; so do we (consumers may rely on one).
        message_id=message.message_id or uuid.uuid4().hex,
        timestamp=message.timestamp,
        message_type=message.message_type,
    )
    body = message.body
    frames: list[Any] = [
        spec.Basic.Publish(exchange=message.exchange, routing_key=message.routing_key),
        ContentHeader(body_size=len(body), properties=properties),
    ]
    if len(body) <= max_content_size:
        if body:
            frames.append(ContentBody(body))
    else:
        view = memoryview(body)
        for start in range(0, len(body), max_content_size):
            frames.append(ContentBody(bytes(view[start : start + max_content_size])))
    return frames


async def write_batch(
    channel: Any, messages: Sequence[OutgoingMessage]
) -> list[asyncio.Future[Any] | BaseException]:
    """Write the publications of ``messages`` in list order on ``channel`` (publisher confirms
    on; ``PUBLISH_INTERNALS`` checked), holding its lock; return each one's confirmation future,
    or the error that kept it from being written (a message the frames cannot encode).

    The same sequence numbers, confirmation futures and frame queue as aiormq's
    ``basic_publish``, but one write per ``WRITE_CHUNK`` messages and no task per message.
    """
    outcomes: list[asyncio.Future[Any] | BaseException] = []
    loop = asyncio.get_running_loop()
    async with channel.lock:
        for start in range(0, len(messages), WRITE_CHUNK):
            frames: list[Any] = []
            written: list[bytes] = []  # the frames of the chunk, encoded
            futures: list[asyncio.Future[Any]] = []
            for message in messages[start : start + WRITE_CHUNK]:
                try:
                    if _RAW_PAYLOAD:
                        written.append(_encoded(message, channel.number, channel.max_content_size))
                    else:
                        frames.extend(_frames(message, channel.max_content_size))
                except (ValueError, TypeError) as exc:
                    outcomes.append(exc)
                    continue
                channel.delivery_tag += 1
                # A plain future: aiormq's own (``create_future``) carry three done callbacks,
                # each a pass of the Trio scheduler. ``wait_for_confirmations`` watches the
                # channel's closing instead of relying on aiormq rejecting them.
                future = loop.create_future()
                channel.confirmations[channel.delivery_tag] = future
                futures.append(future)
                outcomes.append(future)
            if not frames and not written:
                continue
            try:
                payload = aiormq.abc.ChannelFrame.marshall(
                    channel_number=channel.number, frames=frames
                )
                if written:  # _RAW_PAYLOAD: the chunk's messages, encoded in order
                    payload = dataclasses.replace(payload, payload=b"".join(written))
                await channel.write_queue.put(payload)
            except BaseException:
                # Not written: give their sequence numbers back (we hold the lock, they are the
                # last ones). The chunks written before are abandoned like a cancelled wait.
                for _ in futures:
                    channel.confirmations.pop(channel.delivery_tag, None)
                    channel.delivery_tag -= 1
                for outcome in outcomes:
                    if isinstance(outcome, asyncio.Future):
                        outcome.cancel()
                raise
    return outcomes


async def wait_for_confirmations(
    outcomes: list[asyncio.Future[Any] | BaseException], channel: Any
) -> list[BaseException | None]:
    """Wait for every confirmation of ``write_batch``, or for ``channel`` to close; return each
    message's error (None when confirmed). A suspension only when the next confirmation has not
    arrived yet (no callback per message). Cancelled: the pending futures are cancelled (aiormq
    ignores their late confirms)."""
    closing: asyncio.Future[Any] = channel.closing
    closed: BaseException | None = None
    try:
        for outcome in outcomes:
            if isinstance(outcome, asyncio.Future) and not outcome.done():
                await asyncio.wait((outcome, closing), return_when=asyncio.FIRST_COMPLETED)
                if closing.done():
                    if not closing.cancelled():
                        closed = closing.exception()
                    closed = closed or aiormq.exceptions.ChannelInvalidStateError("closed")
                    break
    except BaseException:
        for outcome in outcomes:
            if isinstance(outcome, asyncio.Future):
                outcome.cancel()
        raise
    finally:
        closing.cancel()  # only stops observing (a no-op when it is done)
    results: list[BaseException | None] = []
    for outcome in outcomes:
        if not isinstance(outcome, asyncio.Future):
            results.append(outcome)
        elif not outcome.done():
            outcome.cancel()
            results.append(closed)
        elif outcome.cancelled():
            results.append(asyncio.CancelledError())
        else:
            results.append(outcome.exception())
    return results
