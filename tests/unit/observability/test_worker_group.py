"""The shared directory of a worker group: readiness of the other workers, joined metrics."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from workflow_orchestrator.observability import GroupMember, WorkerGroup, write_members
from workflow_orchestrator.observability._group_metrics import GroupExposition


def _group(tmp_path: Path, index: int = 0) -> WorkerGroup:
    for name in ("status", "live", "metrics"):
        (tmp_path / name).mkdir(exist_ok=True)
    return WorkerGroup(directory=tmp_path, index=index, replica=f"r-w{index}")


def _status(tmp_path: Path, index: int, *, pid: int, ready: bool, age: float = 0.0) -> None:
    body = {"pid": pid, "replica": f"r-w{index}", "ready": ready, "at": time.time() - age}
    (tmp_path / "status" / f"{index}.json").write_text(json.dumps(body))


def _members(tmp_path: Path, *pids: int) -> None:
    write_members(
        tmp_path,
        {k: GroupMember(index=k, pid=pid, replica=f"r-w{k}") for k, pid in enumerate(pids)},
    )


def test_from_environment() -> None:
    assert WorkerGroup.from_environment({}) is None
    group = WorkerGroup.from_environment(
        {
            "WORKFLOW_WORKER_GROUP": "/run/g",
            "WORKFLOW_WORKER_INDEX": "3",
            "WORKFLOW_WORKER_REPLICA": "a-w3",
        }
    )
    assert group == WorkerGroup(directory=Path("/run/g"), index=3, replica="a-w3")


def test_the_group_is_ready_when_every_other_running_worker_says_so(tmp_path: Path) -> None:
    group = _group(tmp_path)
    _members(tmp_path, os.getpid(), 101, 102)
    _status(tmp_path, 1, pid=101, ready=True)
    _status(tmp_path, 2, pid=102, ready=True)
    others, lagging = group.not_ready()
    assert [m.replica for m in others] == ["r-w1", "r-w2"]
    assert lagging == []


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (None, "no status yet (starting)"),
        ({"pid": 999, "ready": True}, "the status of the process before a restart"),
        ({"pid": 102, "ready": False}, "not ready"),
        ({"pid": 102, "ready": True, "age": 10.0}, "stale: the worker stopped writing"),
    ],
)
def test_a_worker_not_ready(tmp_path: Path, status: dict[str, object] | None, why: str) -> None:
    group = _group(tmp_path)
    _members(tmp_path, os.getpid(), 101, 102)
    _status(tmp_path, 1, pid=101, ready=True)
    if status is not None:
        _status(
            tmp_path,
            2,
            pid=int(str(status["pid"])),
            ready=bool(status["ready"]),
            age=float(str(status.get("age", 0.0))),
        )
    _, lagging = group.not_ready()
    assert lagging == ["r-w2"], why


def test_a_worker_the_parent_does_not_run_is_not_waited_for(tmp_path: Path) -> None:
    """Dead and not restarted yet: the parent removed it from the members."""
    group = _group(tmp_path)
    _members(tmp_path, os.getpid())
    _status(tmp_path, 1, pid=101, ready=False)
    assert group.not_ready() == ([], [])


def test_metrics_join_each_workers_scrape_time_metrics_with_a_worker_label(
    tmp_path: Path,
) -> None:
    group = _group(tmp_path)
    other = _group(tmp_path, index=1)
    _members(tmp_path, os.getpid(), 101)
    _status(tmp_path, 1, pid=101, ready=True)
    other.write_live(
        b"# HELP pool_used Used connections\n# TYPE pool_used gauge\n"
        b'pool_used{pool="primary"} 3.0\n'
    )
    live = CollectorRegistry()
    Gauge("pool_used", "Used connections", ["pool"], registry=live).labels("primary").set(5)
    text = GroupExposition(group, live).render().decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "pool_used"]
    samples = {s.labels["worker"]: s.value for s in family.samples}
    assert samples == {"r-w0": 5.0, "r-w1": 3.0}
    assert (tmp_path / "live" / "0.prom").read_text().startswith("# HELP pool_used")


def test_metrics_skip_a_worker_whose_process_changed(tmp_path: Path) -> None:
    group = _group(tmp_path)
    other = _group(tmp_path, index=1)
    _members(tmp_path, os.getpid(), 102)
    _status(tmp_path, 1, pid=101, ready=True)  # the process before the restart wrote these
    other.write_live(b"# TYPE pool_used gauge\npool_used 3.0\n")
    assert group.live_texts() == []
