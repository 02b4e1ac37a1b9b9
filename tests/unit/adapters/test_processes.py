"""Local shell/script processes in their sandbox: I/O, languages, limits, cleanup, slots."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from tests.support.services import unavailable
from tests.unit.dsl.runtime_support import document
from workflow_orchestrator.adapters import (
    LocalProcesses,
    ProcessLimits,
    open_expression_engine,
    open_local_processes,
    run_local_process,
)
from workflow_orchestrator.config import RunTaskSettings
from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.model import build_workflow
from workflow_orchestrator.dsl.runtime import InMemoryEffects, Interpreter, ProcessRequest


def _shell(command: str, **changes: Any) -> ProcessRequest:
    return ProcessRequest(kind="shell", command=command, **changes)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie not reaped yet has ended too)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def _node() -> None:
    if shutil.which("node") is None:
        unavailable("node is not installed; install Node.js 20.19 or newer")


async def _read_fifo(path: Path) -> str:
    """The first line written to the FIFO at ``path`` (waits for a writer, in a thread)."""

    def read() -> str:
        with path.open(encoding="ascii") as fifo:
            return fifo.readline().strip()

    return await trio.to_thread.run_sync(read)


async def test_shell_command_with_arguments_and_stdin() -> None:
    """A shell command gets its arguments ($1...) and stdin; stdout and the exit code come
    back."""
    result = await run_local_process(
        _shell('read x; echo "$0 $1-$x"; echo oops >&2; exit 3', arguments=("a",), stdin="b\n")
    )
    assert (result.code, result.stdout, result.stderr, result.signal) == (
        3,
        "sh a-b\n",
        "oops\n",
        None,
    )


async def test_text_that_is_not_utf8_is_replaced_not_a_crash() -> None:
    """A lone surrogate (valid in JSON data) in stdin or a script becomes '?'; bytes that are
    not UTF-8 in the output become U+FFFD."""
    piped = await run_local_process(_shell("cat; printf '\\377'", stdin="a\ud800b"))
    assert piped.stdout == "a?b\ufffd"
    script = await run_local_process(
        ProcessRequest(kind="script", language="python", command="print('x') # \udc00")
    )
    assert script.stdout == "x\n"


async def test_python_script_runs_from_a_file_with_its_arguments() -> None:
    """A python script runs as a file of its folder, so sys.argv[1:] are its arguments."""
    result = await run_local_process(
        ProcessRequest(
            kind="script",
            language="python",
            command="import os, sys; print(sys.argv[1:], os.path.dirname(sys.argv[0]) == os.getcwd())",
            arguments=("hi", "there"),
        )
    )
    assert result.stdout == "['hi', 'there'] True\n"


@pytest.mark.parametrize(
    "code",
    [
        "import { argv } from 'node:process';\nconsole.log(argv.slice(2).join(','));",
        "const { argv } = require('node:process');\nconsole.log(argv.slice(2).join(','));",
    ],
    ids=["esm", "commonjs"],
)
async def test_javascript_runs_as_esm_or_commonjs(code: str) -> None:
    """JavaScript code with import (ES module) and with require (CommonJS) both run, with
    process.argv[2:] the arguments."""
    _node()
    result = await run_local_process(
        ProcessRequest(kind="script", language="js", command=code, arguments=("a", "b"))
    )
    assert (result.code, result.stdout, result.stderr) == (0, "a,b\n", "")


async def test_a_missing_interpreter_names_its_setting() -> None:
    """A script whose interpreter is not installed faults naming workflows.run.node."""
    with pytest.raises(WorkflowError) as caught:
        await run_local_process(
            ProcessRequest(kind="script", language="javascript", command="1"),
            limits=ProcessLimits(node="no-such-node-here"),
        )
    assert caught.value.problem.detail == (
        "the javascript interpreter 'no-such-node-here' was not found on the service's PATH; "
        "install it, or set workflows.run.node to its path"
    )


async def test_an_unknown_language_is_a_configuration_error() -> None:
    """Only javascript (js) and python scripts run."""
    with pytest.raises(WorkflowError) as caught:
        await run_local_process(ProcessRequest(kind="script", language="ruby", command="1"))
    assert caught.value.problem.type.endswith("/configuration")
    assert caught.value.problem.detail == (
        "script language 'ruby' is not supported; use javascript (or js) or python"
    )


async def test_environment_is_scrubbed_to_what_the_task_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The service's own environment (a database password, secrets) never reaches a process:
    it gets PATH, LANG, HOME and TMPDIR (its folder) and the variables its task declares."""
    monkeypatch.setenv("DATABASE_PASSWORD", "s3cret")
    monkeypatch.setenv("WORKFLOW_SECRET_API_KEY", "k3y")
    result = await run_local_process(
        _shell('env; echo "cwd=$(pwd)"', environment={"GREETING": "hello"})
    )
    lines = result.stdout.splitlines()
    variables = dict(line.split("=", 1) for line in lines)
    assert "s3cret" not in result.stdout and "k3y" not in result.stdout
    assert set(variables) - {"PWD", "SHLVL", "_", "cwd"} == {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "GREETING",
    }
    assert variables["GREETING"] == "hello"
    assert variables["HOME"] == variables["TMPDIR"] == variables["cwd"]


async def test_a_python_script_sees_no_service_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scrubbing holds for scripts too (the interpreter adds nothing of the service's)."""
    monkeypatch.setenv("DATABASE_PASSWORD", "s3cret")
    result = await run_local_process(
        ProcessRequest(
            kind="script",
            language="python",
            command="import os; print(sorted(os.environ))",
            environment={"A": "1"},
        )
    )
    assert result.stdout == "['A', 'HOME', 'LANG', 'PATH', 'TMPDIR']\n"


async def test_each_process_gets_a_fresh_private_folder_removed_afterwards() -> None:
    """The working directory is a new folder only the service's user may enter, and it is
    removed when the process ends, with what the process wrote there."""
    first = await run_local_process(_shell("pwd; touch left-behind"))
    second = await run_local_process(_shell("pwd; stat -c %a ."))
    folder, other, mode = first.stdout.split()[0], *second.stdout.split()
    assert folder != other
    assert mode == "700"
    assert not await trio.Path(folder).exists()
    assert not await trio.Path(other).exists()


async def test_process_timeout_is_the_timeout_error_and_kills_the_tree(tmp_path: Path) -> None:
    """A process that outlives its timeout is stopped with everything it started (children,
    one that left the session too) and the task gets the timeout error naming the setting."""
    pids = tmp_path / "pids"
    with pytest.raises(WorkflowError) as caught:
        await run_local_process(
            _shell(
                f"sleep 60 & echo $! >> {pids}; setsid sleep 60 & echo $! >> {pids}; "
                f"echo $$ >> {pids}; sleep 60",
                timeout=1,
            )
        )
    assert caught.value.problem.type.endswith("/timeout")
    assert caught.value.problem.detail == (
        "the shell process did not finish within 1s; it was stopped. Make it faster, or "
        "raise workflows.run.timeout"
    )
    recorded = [int(pid) for pid in pids.read_text().split()]
    assert len(recorded) == 3
    assert all(_gone(pid) for pid in recorded)


async def test_background_children_do_not_outlive_a_process_that_ended(tmp_path: Path) -> None:
    """A process that ends leaving children behind returns at once; they are killed."""
    result = await run_local_process(_shell("sleep 60 & echo $!; echo done", timeout=30))
    pid, done = result.stdout.split()
    assert done == "done"
    assert _gone(int(pid))


async def test_cancelling_the_task_kills_the_process(tmp_path: Path) -> None:
    """A cancelled task (its own timeout, the instance cancelled) stops its process tree."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_local_process, _shell(f"sleep 60 & echo $! > {fifo}; sleep 60"))
        child = int(await _read_fifo(fifo))
        nursery.cancel_scope.cancel()
    assert _gone(child)


async def test_output_over_the_cap_stops_the_process_and_names_the_setting() -> None:
    """A process writing more than ``max_output`` bytes is stopped; the task faults."""
    limits = ProcessLimits(max_output=4096)
    with pytest.raises(WorkflowError) as caught:
        await run_local_process(_shell("yes xxxxxxxx", timeout=30), limits=limits)
    assert caught.value.problem.detail == (
        "the shell process wrote more than 4,096 bytes to stdout; it was stopped. Write less, "
        "or raise workflows.run.maxOutputSize"
    )
    small = await run_local_process(_shell("echo ok"), limits=limits)
    assert small.stdout == "ok\n"


async def test_resource_limits_are_those_of_the_settings() -> None:
    """CPU seconds, memory, processes, open files and file size of the settings are the
    process's resource limits."""
    limits = ProcessLimits.from_settings(
        RunTaskSettings(
            cpu_time=1.5,
            max_memory=300 * 1024 * 1024,
            max_user_processes=77,
            max_open_files=99,
            max_file_size=5 * 1024 * 1024,
        )
    )
    result = await run_local_process(_shell("cat /proc/self/limits"), limits=limits)
    rows = {line[:26].strip(): line[26:].split()[0] for line in result.stdout.splitlines()[1:]}
    assert rows["Max cpu time"] == "2"
    assert rows["Max data size"] == str(300 * 1024 * 1024)
    assert rows["Max processes"] == "77"
    assert rows["Max open files"] == "99"
    assert rows["Max file size"] == str(5 * 1024 * 1024)


async def test_the_memory_limit_stops_a_greedy_script() -> None:
    """A script allocating past workflows.run.maxMemory fails (Python: MemoryError)."""
    result = await run_local_process(
        ProcessRequest(kind="script", language="python", command="x = bytearray(1 << 30)"),
        limits=ProcessLimits(max_memory=128 * 1024 * 1024),
    )
    assert result.code == 1
    assert result.stderr.rstrip().endswith("MemoryError")


async def test_the_cpu_limit_names_its_setting() -> None:
    """A process spinning past its CPU seconds is stopped by the kernel (SIGXCPU)."""
    with pytest.raises(WorkflowError) as caught:
        await run_local_process(
            _shell("while :; do :; done", timeout=30), limits=ProcessLimits(cpu_seconds=1)
        )
    assert caught.value.problem.detail == (
        "the shell process used more than 1s of CPU time and was stopped; make it do less, or "
        "raise workflows.run.cpuTime"
    )


async def test_the_file_size_limit_names_its_setting() -> None:
    """A process writing a file past its size limit is stopped (SIGXFSZ)."""
    with pytest.raises(WorkflowError) as caught:
        await run_local_process(
            _shell("exec head -c 100000 /dev/zero > big"),
            limits=ProcessLimits(max_file_size=10_000),
        )
    assert caught.value.problem.detail == (
        "the shell process wrote a file larger than 10,000 bytes and was stopped; write less, "
        "or raise workflows.run.maxFileSize"
    )


async def test_the_open_files_limit_holds() -> None:
    """A process cannot open more files than workflows.run.maxOpenFiles."""
    result = await run_local_process(
        ProcessRequest(
            kind="script",
            language="python",
            command="f = [open('/dev/null') for _ in range(100)]",
        ),
        limits=ProcessLimits(max_open_files=32),
    )
    assert result.code == 1
    assert "Too many open files" in result.stderr


async def test_a_process_killed_by_a_signal_reports_it() -> None:
    """A process ended by a signal has exit code 128 + n and the signal in the result."""
    result = await run_local_process(_shell("kill -TERM $$"))
    assert (result.code, result.signal) == (128 + signal.SIGTERM, "SIGTERM")


async def test_processes_beyond_the_concurrency_wait_for_a_slot(tmp_path: Path) -> None:
    """With concurrency 1 a second process starts only when the first ends; one that waits
    longer than its timeout faults naming workflows.run.concurrency."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    results: list[str] = []

    async def run(processes: LocalProcesses, request: ProcessRequest) -> None:
        results.append((await processes.run_process(request)).stdout)

    async with (
        open_local_processes(ProcessLimits(concurrency=1)) as processes,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(run, processes, _shell(f"read x < {fifo}; echo first"))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(run, processes, _shell("echo second"))
        with pytest.raises(WorkflowError) as caught:
            await processes.run_process(_shell("echo third", timeout=0.2))
        assert processes.running() == 1

        def release() -> None:
            with fifo.open("w") as writer:
                writer.write("go\n")

        await trio.to_thread.run_sync(release)
    assert results == ["first\n", "second\n"]
    assert caught.value.problem.detail == (
        "all 1 process slots stayed busy for 0.2s, so the shell process did not start; retry "
        "later, run fewer processes at once or raise workflows.run.concurrency"
    )


async def test_a_process_not_awaited_runs_on_and_is_owned_by_the_processes(
    tmp_path: Path,
) -> None:
    """await: false returns once the process started; it runs on under its timeout, and the
    end of open_local_processes kills it."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    async with open_local_processes() as processes:
        result = await processes.run_process(
            _shell(f"echo $$ > {fifo}; exec sleep 60", await_completion=False)
        )
        assert (result.code, result.stdout) == (0, "")
        pid = int(await _read_fifo(fifo))
        assert processes.running() == 1
        assert not _gone(pid)
    assert _gone(pid)


async def test_a_process_not_awaited_that_cannot_start_faults_the_task() -> None:
    """await: false still reports what keeps the process from starting (here its
    interpreter) to the task, and nothing is left running."""
    limits = ProcessLimits(node="no-such-node-here")
    async with open_local_processes(limits) as processes:
        with pytest.raises(WorkflowError) as caught:
            await processes.run_process(
                ProcessRequest(kind="script", language="js", command="1", await_completion=False)
            )
        assert (processes.running(), processes.started) == (0, 0)
    assert caught.value.problem.detail is not None
    assert "set workflows.run.node to its path" in caught.value.problem.detail


async def _ended(pid: int) -> None:
    """Return when process ``pid`` has ended (its pidfd becomes readable)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def test_a_process_not_awaited_still_has_its_timeout(tmp_path: Path) -> None:
    """A process that is not awaited is stopped when its timeout passes."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    async with open_local_processes() as processes:
        await processes.run_process(
            _shell(f"echo $$ > {fifo}; exec sleep 60", await_completion=False, timeout=0.5)
        )
        pid = int(await _read_fifo(fifo))
        with trio.fail_after(20):
            await _ended(pid)


async def test_run_shell_task_when_enabled() -> None:
    """With a process handler the run task returns per ``return`` (all: code/stdout/stderr)."""
    workflow = build_workflow(
        document(
            "do:\n  - sh:\n      run:\n        shell: {command: 'echo out; echo err >&2'}\n        return: all\n"
        )
    )
    async with open_expression_engine() as engine:
        result = await Interpreter(workflow, engine).start(
            InMemoryEffects(processes=run_local_process)
        )
    assert result.output == {"code": 0, "stdout": "out\n", "stderr": "err\n"}
