"""`hide_from_processes`: what the service's own processes may not read of it.

``run.shell``, ``run.script`` and MCP servers over stdio run as the service's user. Without
more, such a process could read ``/proc/<service pid>/environ`` (the database password, secret
values from the environment) or attach a debugger to the service. Marking the service not
dumpable (``prctl(PR_SET_DUMPABLE, 0)``) makes its ``/proc`` entries root's and refuses
``ptrace`` from the same user; the service still reads its own. The cost: a debugger or
``py-spy`` must then run as root. The service does it only when configuration lets workflows
start processes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["hide_from_processes", "is_dumpable"]

_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
_log = logging.getLogger(__name__)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def hide_from_processes() -> bool:
    """Mark this process not dumpable; False (with a WARNING) where the system refuses."""
    libc = _libc()
    if libc is None or libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        _log.warning(
            "could not mark the service not dumpable (prctl PR_SET_DUMPABLE): processes that "
            "workflows start may read its environment in /proc"
        )
        return False
    return True


def is_dumpable() -> bool | None:
    """Whether this process is dumpable (None where prctl is not available)."""
    libc = _libc()
    if libc is None:
        return None
    return bool(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))
