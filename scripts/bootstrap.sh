#!/usr/bin/env bash
# Create or reuse .venv and install medrecon with everything it needs.
# Idempotent: re-runs are quick when nothing changed (stamp on pyproject + constraints).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
py="${PYTHON:-python3}"
extras="${1:-ai,slicer,test}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=".venv/.medrecon-stamp"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-$extras"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # torch first, by exact pin, so the local CPU wheel is used and no CUDA build is pulled.
  PIP_CONSTRAINT="$here/constraints.txt" .venv/bin/python -m pip install -q "torch==2.13.0"
  PIP_CONSTRAINT="$here/constraints.txt" .venv/bin/python -m pip install -q -e ".[$extras]"
  echo "$want" > "$stamp"
fi
