# Shared by the bin/ scripts: find the workflow-orchestrator command.
# Order: $WORKFLOW_ORCHESTRATOR_BIN, the active virtualenv, the checkout's .venv, then PATH.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
find_command() {
  if [ -n "${WORKFLOW_ORCHESTRATOR_BIN:-}" ]; then
    echo "$WORKFLOW_ORCHESTRATOR_BIN"
  elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/workflow-orchestrator" ]; then
    echo "$VIRTUAL_ENV/bin/workflow-orchestrator"
  elif [ -x "$here/../.venv/bin/workflow-orchestrator" ]; then
    echo "$here/../.venv/bin/workflow-orchestrator"
  elif command -v workflow-orchestrator >/dev/null 2>&1; then
    command -v workflow-orchestrator
  else
    echo "error: workflow-orchestrator is not installed; run 'make install' or 'pip install .'" >&2
    return 1
  fi
}
