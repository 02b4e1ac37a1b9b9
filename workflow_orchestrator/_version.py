"""The package version, read by setup.cfg and reported by `workflow-orchestrator version`."""

__version__ = "0.1.0"
