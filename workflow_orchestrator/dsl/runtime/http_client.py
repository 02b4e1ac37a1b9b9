"""The httpx-based HTTP adapter: the one I/O boundary of the DSL runtime (needs httpx)."""

from workflow_orchestrator.dsl.runtime._http_client import HttpxClient

__all__ = ["HttpxClient"]
