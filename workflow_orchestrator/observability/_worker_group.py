"""The shared directory of a group of worker processes (``server.workers`` > 1).

The parent process (``workers``) creates a private directory (mode 0700) and passes it to each
worker in ``WORKFLOW_WORKER_GROUP``, with the worker's index and replica id. The directory holds:

- ``members.json``, written by the parent: the workers running now (index, pid, replica id);
- ``status/<index>.json``, written by each worker about once a second: its own readiness;
- ``live/<index>.prom``, written by each worker with its status: the metrics read at scrape
  time (pools, instance counts, process metrics), in the Prometheus text format;
- ``metrics/``: prometheus-client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``) of the
  counters, histograms and the readiness gauge.

Every file is replaced by a rename, so a reader never sees half of one. A worker's status older
than ``STALE_AFTER`` seconds counts as not ready (the worker stopped answering).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "GROUP_ENV",
    "INDEX_ENV",
    "REPLICA_ENV",
    "STALE_AFTER",
    "GroupMember",
    "WorkerGroup",
    "WorkerStatus",
    "read_status",
    "write_atomically",
    "write_members",
]

GROUP_ENV = "WORKFLOW_WORKER_GROUP"
INDEX_ENV = "WORKFLOW_WORKER_INDEX"
REPLICA_ENV = "WORKFLOW_WORKER_REPLICA"
#: A status this old (seconds) says nothing any more: that worker counts as not ready.
STALE_AFTER = 5.0
MEMBERS_FILE = "members.json"
STATUS_DIR = "status"
LIVE_DIR = "live"
METRICS_DIR = "metrics"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (a temporary file renamed over it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@attrs.frozen(kw_only=True)
class GroupMember:
    """A worker the parent runs now."""

    index: int
    pid: int
    replica: str
    #: How often the parent restarted this worker (its index) since the group started.
    restarts: int = 0


@attrs.frozen(kw_only=True)
class WorkerStatus:
    """What a worker last wrote about itself."""

    pid: int
    replica: str
    ready: bool
    written_at: float

    def fresh(self, now: float) -> bool:
        return now - self.written_at <= STALE_AFTER


def write_members(directory: Path, members: Mapping[int, GroupMember]) -> None:
    """The parent's list of the workers running now."""
    body = [attrs.asdict(member) for _, member in sorted(members.items())]
    write_atomically(directory / MEMBERS_FILE, json.dumps(body).encode())


def read_status(directory: Path, index: int) -> WorkerStatus | None:
    """Worker ``index``'s last status, or None when it wrote none (or it cannot be read)."""
    try:
        raw: Any = json.loads((directory / STATUS_DIR / f"{index}.json").read_bytes())
        return WorkerStatus(
            pid=int(raw["pid"]),
            replica=str(raw["replica"]),
            ready=bool(raw["ready"]),
            written_at=float(raw["at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_members(directory: Path) -> list[GroupMember]:
    try:
        raw: Any = json.loads((directory / MEMBERS_FILE).read_bytes())
        return [
            GroupMember(
                index=int(m["index"]),
                pid=int(m["pid"]),
                replica=str(m["replica"]),
                restarts=int(m.get("restarts", 0)),
            )
            for m in raw
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []


@attrs.frozen(kw_only=True)
class WorkerGroup:
    """This worker's place in its group: the shared directory, its index and replica id."""

    directory: Path
    index: int
    replica: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> WorkerGroup | None:
        """The group the parent started this process in, or None (a single process)."""
        directory = environ.get(GROUP_ENV)
        if not directory:
            return None
        return cls(
            directory=Path(directory),
            index=int(environ.get(INDEX_ENV, "0")),
            replica=environ.get(REPLICA_ENV, ""),
        )

    @property
    def metrics_directory(self) -> Path:
        return self.directory / METRICS_DIR

    def members(self) -> list[GroupMember]:
        """The workers the parent runs now (this one included once it is listed)."""
        return _read_members(self.directory)

    def write_status(self, *, ready: bool) -> None:
        body = {"pid": os.getpid(), "replica": self.replica, "ready": ready, "at": time.time()}
        write_atomically(
            self.directory / STATUS_DIR / f"{self.index}.json", json.dumps(body).encode()
        )

    def not_ready(self) -> tuple[list[GroupMember], list[str]]:
        """The other running workers, and the replica ids of those not ready: no fresh status
        of their current process saying ready (this worker judges itself)."""
        now = time.time()
        others = [m for m in self.members() if m.index != self.index]
        lagging: list[str] = []
        for member in others:
            status = read_status(self.directory, member.index)
            current = status is not None and status.pid == member.pid and status.fresh(now)
            if not (current and status is not None and status.ready):
                lagging.append(member.replica)
        return others, lagging

    def write_live(self, text: bytes) -> None:
        """This worker's scrape-time metrics, for the other workers' ``/metrics``."""
        write_atomically(self.directory / LIVE_DIR / f"{self.index}.prom", text)

    def live_texts(self) -> list[tuple[str, str]]:
        """(replica id, metrics text) of every other running worker that wrote its metrics."""
        texts: list[tuple[str, str]] = []
        for member in self.members():
            if member.index == self.index:
                continue
            status = read_status(self.directory, member.index)
            if status is None or status.pid != member.pid:
                continue  # a new process that has not written its own yet
            try:
                text = (self.directory / LIVE_DIR / f"{member.index}.prom").read_text()
            except OSError:
                continue
            texts.append((member.replica, text))
        return texts
