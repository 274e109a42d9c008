#!/usr/bin/env bash
# Creates (once per machine) the Python venv the Tools/ scripts use, outside
# the work tree so it survives fresh clones. Prints its python path.
set -euo pipefail
VENV="${MOVQ_VENV:-$HOME/.venvs/movq}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$(dirname "$0")/requirements.txt" >&2
fi
echo "$VENV/bin/python"
