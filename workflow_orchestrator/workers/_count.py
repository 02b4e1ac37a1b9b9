"""How many workers ``server.workers`` (or ``serve --workers``) asks for.

``auto`` is one worker per CPU this process may use: the CPU count, cut to the CPU affinity
mask (``taskset``, cpusets) and to the cgroup v2 CPU quota (``/sys/fs/cgroup/cpu.max``, what a
container's CPU limit becomes), whichever is smallest, and at least 1.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["CGROUP_CPU_MAX", "usable_cpus", "worker_count"]

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _cgroup_cpus(path: Path) -> int | None:
    """Whole CPUs of the cgroup v2 quota (``QUOTA PERIOD``, or ``max``: none), at least 1."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        cpus = int(quota) // int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return max(cpus, 1)


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: count, affinity and cgroup quota, the smallest."""
    count = os.cpu_count() or 1
    with contextlib.suppress(AttributeError, OSError):  # not on Linux: no affinity
        count = min(count, len(os.sched_getaffinity(0)))
    quota = _cgroup_cpus(cpu_max)
    if quota is not None:
        count = min(count, quota)
    return max(count, 1)


def worker_count(value: str, cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The number of ``value`` (``server.workers`` as converted: ``auto`` or a whole number)."""
    if value.strip().lower() == "auto":
        return usable_cpus(cpu_max)
    count = int(value)
    if count < 1:
        raise ValueError(f"a worker count must be at least 1, got {value!r}")
    return count
