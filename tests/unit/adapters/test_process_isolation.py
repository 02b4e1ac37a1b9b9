"""The service hides itself from the processes workflows start (see ``_process_isolation``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_hidden_service_is_not_dumpable_and_still_reads_its_own_proc() -> None:
    """After `hide_from_processes` the process is not dumpable (its /proc entries are root's,
    ptrace from its user is refused) and still reads its own /proc."""
    code = textwrap.dedent(
        """
        from workflow_orchestrator.adapters._process_isolation import (
            hide_from_processes, is_dumpable,
        )
        assert is_dumpable() is True
        assert hide_from_processes() is True
        assert is_dumpable() is False
        with open("/proc/self/environ", "rb") as own:
            assert own.read() is not None
        print("hidden")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hidden"
