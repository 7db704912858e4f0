#!/usr/bin/env bash
# Usage: scripts/lock.sh LOCKFILE PYTHON [EXTRA_REQUIREMENT]
# Resolves '.[dev]' (plus EXTRA_REQUIREMENT, e.g. a Django range) with no constraints in a throwaway
# venv and writes the exact versions to LOCKFILE, keeping the file's header comment.
set -euo pipefail
lock=$1 python=${2:-python3} extra=${3:-}
[ -n "$python" ] || { echo "no interpreter given for $lock (set PY310 / PY312)" >&2; exit 2; }
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e ".[dev]" ${extra:+"$extra"}
header=$(grep '^#' "$lock" 2>/dev/null || echo "# Pinned dev/test toolchain; regenerate with \`make lock\`.")
{ echo "$header"; "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^-e '; } > "$lock"
echo "wrote $lock"
