"""The process launcher: run as ``python -I -S _process_launcher.py LIFELINE_FD``, it starts one
``run.shell``/``run.script`` process in its sandbox and makes sure nothing it started outlives it.

It imports nothing of workflow_orchestrator (only the standard library), so it starts in a few
milliseconds and works from an installed wheel; ``-I`` keeps this folder and ``PYTHON*``
variables out of it. The service starts it in a new session, with the task's stdin, stdout and
stderr pipes. It reads its orders from stdin first: a 4-byte big-endian length and a JSON
object ``{"argv", "env", "cwd", "limits", "deadline"}``; the rest of stdin is the task's.

Then it forks the task's process, which, before it ``execve``s ``argv`` with exactly ``env``
in ``cwd``: restores the default signal dispositions Python changed (``SIGPIPE``,
``SIGXFSZ``), sets ``umask 077`` and the resource limits (``limits``: ``cpu`` seconds ->
``RLIMIT_CPU``, ``data`` bytes -> ``RLIMIT_DATA``, ``processes`` -> ``RLIMIT_NPROC``,
``files`` -> ``RLIMIT_NOFILE``, ``file_size`` bytes -> ``RLIMIT_FSIZE``; 0 leaves one as it
is). A failed ``execve`` prints the reason on stderr and exits 127, as shells do.

The launcher is a child subreaper (``PR_SET_CHILD_SUBREAPER``): every descendant the task
leaves behind, even one that left the session with ``setsid``, becomes its child. It closes
its own copies of the pipes and waits for one of: the task's process ends; ``SIGTERM``
(``SIGINT``, ``SIGHUP``) from the service; end of file on ``LIFELINE_FD`` (the service process
died: the kernel closed the other end); ``deadline`` seconds passed. In every case it then kills
(``SIGKILL``) every descendant left, reaps them, and ends as the task's process ended: with its
exit code, or by the signal that killed it (so the service reads the same status). So the
pipes reach end of file only when no descendant is left.
"""

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import struct
import sys
import time
from typing import Any

_PR_SET_CHILD_SUBREAPER = 36
_LIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA,
    "processes": resource.RLIMIT_NPROC,
    "files": resource.RLIMIT_NOFILE,
    "file_size": resource.RLIMIT_FSIZE,
}
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_REAP_SECONDS = 2.0


def _read_exactly(size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            raise EOFError("stdin ended before the launcher's orders")
        data += chunk
    return data


def _orders() -> dict[str, Any]:
    (size,) = struct.unpack(">I", _read_exactly(4))
    orders: dict[str, Any] = json.loads(_read_exactly(size))
    return orders


def _set_limit(name: str, value: int) -> None:
    which = _LIMITS[name]
    if value <= 0:
        return
    hard = resource.getrlimit(which)[1]
    # CPU: SIGXCPU at the soft limit, SIGKILL a second later should the process ignore it.
    new_hard = value + 1 if name == "cpu" else value
    if hard != resource.RLIM_INFINITY:
        new_hard = min(new_hard, hard)
        value = min(value, hard)
    resource.setrlimit(which, (value, new_hard))


def _exec_child(orders: dict[str, Any], closing: tuple[int, ...]) -> None:
    """In the forked child: become the task's process (never returns)."""
    try:
        signal.set_wakeup_fd(-1)
        for number in (*_STOP_SIGNALS, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for fd in closing:
            os.close(fd)
        os.umask(0o077)
        os.chdir(orders["cwd"])
        for name, value in orders["limits"].items():
            _set_limit(name, int(value))
        argv = orders["argv"]
        os.execve(argv[0], argv, orders["env"])
    except BaseException as error:  # whatever it was, report it and exit 127
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        os.write(2, f"cannot run {orders['argv'][0]}: {reason}\n".encode(errors="replace"))
    finally:
        os._exit(127)


def _children_of(root: int) -> list[int]:
    """Every descendant of ``root`` (from /proc), zombies included."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in parents.get(stack.pop(), ()):
            found.append(child)
            stack.append(child)
    return found


def _kill_descendants() -> None:
    """SIGKILL every descendant left and reap them, until none is left. Bounded: a process
    stuck in the kernel is left behind after ``_REAP_SECONDS``."""
    give_up = time.monotonic() + _REAP_SECONDS
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return  # no child: orphans become ours (subreaper), so no descendant either
        if time.monotonic() > give_up:
            return
        for pid in _children_of(os.getpid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)


def _end_like(status: os.waitid_result | None) -> None:
    """Exit as the task's process ended (``status`` from waitid; None: it was killed)."""
    number: int = signal.SIGKILL
    if status is not None:
        if status.si_code == os.CLD_EXITED:
            os._exit(status.si_status)
        number = status.si_status
    if number != signal.SIGKILL:
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # a signal that does not end a process by default


def _wait(
    main_pid: int, wake_read: int, lifeline: int, deadline: float, stop: list[int]
) -> os.waitid_result | None:
    """Wait until the task's process ends (its status, reaped) or a reason to stop it comes
    (None): a stop signal, the lifeline's end of file, the deadline."""
    watched = [wake_read, *([lifeline] if lifeline >= 0 else [])]
    while not stop:
        status = os.waitid(os.P_PID, main_pid, os.WEXITED | os.WNOHANG)
        if status is not None:
            return status
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select(watched, [], [], left)
        if lifeline in readable and not os.read(lifeline, 1):
            return None  # the service is gone
        if wake_read in readable:
            try:
                while os.read(wake_read, 512):
                    pass
            except BlockingIOError:
                pass
    return None


def _kill_main(main_pid: int) -> None:
    """SIGKILL the task's process and reap it (bounded)."""
    os.kill(main_pid, signal.SIGKILL)
    give_up = time.monotonic() + _REAP_SECONDS
    while time.monotonic() < give_up:
        if os.waitid(os.P_PID, main_pid, os.WEXITED | os.WNOHANG) is not None:
            return
        time.sleep(0.002)


def main() -> None:
    """Start the task's process, wait for it (or a reason to stop it), clean up, and exit."""
    lifeline = int(sys.argv[1]) if len(sys.argv) > 1 else -1
    try:
        orders = _orders()
    except (EOFError, ValueError, struct.error) as error:
        os.write(2, f"the process launcher got no valid orders: {error}\n".encode())
        os._exit(126)
    started = time.monotonic()
    deadline = started + float(orders["deadline"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Not on Linux: descendants that leave the session are not followed.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    stop: list[int] = []
    for number in _STOP_SIGNALS:
        signal.signal(number, lambda signum, frame: stop.append(signum))
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    closing = (wake_read, wake_write, *([lifeline] if lifeline >= 0 else []))
    main_pid = os.fork()
    if main_pid == 0:
        _exec_child(orders, closing)
    # Only descendants hold the task's pipes from now on.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    status = None
    try:
        status = _wait(main_pid, wake_read, lifeline, deadline, stop)
    finally:
        if status is None:
            _kill_main(main_pid)
        _kill_descendants()
    _end_like(status)


if __name__ == "__main__":
    main()
