"""Local shell/script processes for runtimes that enable them (does I/O; off by default)."""

from workflow_orchestrator.dsl.runtime._processes import run_local_process

__all__ = ["run_local_process"]
