#!/usr/bin/env bash
# Start the service. Example: bin/start.sh --url jdbc:postgresql://db-host:5432/workflows --username workflow_user --password secure_password
# Every option of `workflow-orchestrator serve --help` is accepted (--config, --profile, ...).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_common.sh"
exe="$(find_command)"
exec "$exe" serve "$@"
