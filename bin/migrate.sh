#!/usr/bin/env bash
# Apply pending schema migrations. Example: bin/migrate.sh --url jdbc:postgresql://db-host:5432/workflows --username workflow_user --password secure_password
# Every option of `workflow-orchestrator migrate --help` is accepted (--config, --profile, ...).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_common.sh"
exe="$(find_command)"
exec "$exe" migrate "$@"
