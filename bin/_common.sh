# Shared by the bin/ scripts: find the workflow-orchestrator command.
# Order: $WORKFLOW_ORCHESTRATOR_BIN, the active virtualenv, the .venv next to bin/ (in a checkout
# or in the unzipped release), then PATH.
# In the unzipped release (a workflow_orchestrator-*.whl next to bin/) where none of these is
# found and there is no .venv yet, every script (start.sh, init-schema.sh, migrate.sh) first
# installs the release: it creates <release>/.venv with python3.11 ($PYTHON if set) and installs
# the wheel with its dependencies from the package index. The virtualenv is built in
# .venv.tmp.<pid> and renamed to .venv only once complete, so a failed or interrupted install
# leaves no .venv that a later run would trust.
# Exit codes: 1 when the install fails (it may succeed later, e.g. once the index answers) or in
# a checkout with nothing installed; 2 when it cannot be attempted (no Python 3.11, the folder
# is not writable, a .venv without the command, several wheels), which systemd does not restart.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="${0##*/}"

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
    local root wheels
    root="$(cd "$here/.." && pwd)"
    wheels=("$root"/workflow_orchestrator-*.whl)
    if [ -f "${wheels[0]}" ]; then
      # The release zip: its wheel lies next to bin/.
      install_release "$root" "${wheels[@]}" || return
      echo "$root/.venv/bin/workflow-orchestrator"
    else
      echo "error: workflow-orchestrator is not installed; run 'make install' or 'pip install .'" >&2
      return 1
    fi
  fi
}

# install_release ROOT WHEEL: create ROOT/.venv with WHEEL installed, or fail leaving no .venv.
# (More than one WHEEL: refused, the choice is the operator's.)
install_release() {
  local root="$1" wheel="$2" python="${PYTHON:-python3.11}" final tmp
  final="$root/.venv"
  local by_hand
  by_hand="$(printf '  %q -m venv %q && %q install %q' \
    "$python" "$final" "$final/bin/pip" "$wheel")"
  if [ "$#" -gt 2 ]; then
    echo "error: workflow-orchestrator is not installed, and $root holds several wheels" \
      "(${*:2}); keep only the release's own, then run $script again" >&2
    return 2
  fi
  if [ -e "$final" ]; then
    echo "error: $final exists but has no bin/workflow-orchestrator; install the release's" \
      "wheel into it with '$final/bin/pip install $wheel', or remove $final and run" \
      "$script again" >&2
    return 2
  fi
  if [ ! -w "$root" ]; then
    echo "error: workflow-orchestrator is not installed, and $root is not writable to install" \
      "it into $final; as the folder's owner, run $script once, or:" >&2
    echo "$by_hand" >&2
    return 2
  fi
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: workflow-orchestrator is not installed, and $python, which would install it" \
      "into $final, was not found; install Python 3.11 with its venv module (Debian and" \
      "Ubuntu: apt-get install python3.11 python3.11-venv; RHEL: dnf install python3.11)," \
      "or set PYTHON to a Python 3.11 interpreter" >&2
    return 2
  fi
  tmp="$root/.venv.tmp.$$"
  echo "$script: first run of this release: installing ${wheel##*/} and its dependencies" \
    "into $final with $python (needs the package index; once only)" >&2
  remove_stale_builds "$root"
  rm -rf "$tmp" # left by an earlier process that had our pid
  # Interrupted (Ctrl-C, SIGTERM) or failed: the half-made virtualenv goes. (The path is
  # expanded now: the traps may run after this function's locals are gone.)
  local remove
  remove="rm -rf $(printf %q "$tmp")"
  trap "$remove" EXIT
  trap "$remove; exit 130" INT
  trap "$remove; exit 143" TERM
  if "$python" -m venv --prompt .venv "$tmp" >&2 \
    && "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      --root-user-action=ignore "$wheel" >&2 \
    && [ -x "$tmp/bin/workflow-orchestrator" ] \
    && relocate "$tmp" "$final"; then
    trap - EXIT INT TERM
    echo "$script: installed workflow-orchestrator into $final" >&2
    return 0
  fi
  rm -rf "$tmp"
  trap - EXIT INT TERM
  if [ -x "$final/bin/workflow-orchestrator" ]; then
    return 0 # another run installed it meanwhile
  fi
  echo "error: installing ${wheel##*/} into $final failed (see above); nothing was kept." \
    "Check that $python has its venv module and that the package index can be reached" \
    "(pip's configuration and PIP_INDEX_URL apply), then run $script again, or install by hand:" >&2
  echo "$by_hand" >&2
  return 1
}

# remove_stale_builds ROOT: the .venv.tmp.<pid> folders of installs whose process is gone
# (killed before its traps ran).
remove_stale_builds() {
  local build pid
  for build in "$1"/.venv.tmp.*; do
    pid="${build##*.}"
    [ -d "$build" ] || continue
    if ! kill -0 "$pid" 2>/dev/null && [ ! -d "/proc/$pid" ]; then
      rm -rf "$build"
    fi
  done
}

# relocate TMP FINAL: the virtualenv built in TMP names its own path in its scripts' first line
# (#!TMP/bin/python), its activate scripts and pyvenv.cfg; point those at FINAL, then rename
# TMP to FINAL (which fails if FINAL appeared meanwhile).
relocate() {
  "$1/bin/python" - "$1" "$2" <<'PYTHON'
import os
import sys
from pathlib import Path

tmp, final = Path(sys.argv[1]), Path(sys.argv[2])
old, new = str(tmp).encode(), str(final).encode()
for path in [tmp / "pyvenv.cfg", *(tmp / "bin").iterdir()]:
    if path.is_symlink() or not path.is_file():
        continue
    data = path.read_bytes()
    if old in data and (path.name.startswith("activate") or data.startswith(b"#!")
                        or path.name == "pyvenv.cfg"):
        path.write_bytes(data.replace(old, new))
os.rename(tmp, final)
PYTHON
}
