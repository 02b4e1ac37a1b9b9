"""workflow-orchestrator: a durable Serverless Workflow DSL 1.0 runtime on Trio."""

from workflow_orchestrator._version import __version__

__all__ = ["__version__"]
