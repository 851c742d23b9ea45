#!/usr/bin/env bash
# Programs the printing/viewing tests run on medrecon's meshes (idempotent; quick when present):
#  - PrusaSlicer's CLI (Debian `prusa-slicer`, 2.5 on bookworm): `--info` (manifold) and
#    `--export-gcode` with its default printer, on STL and 3MF files;
#  - lib3mf (PyPI, the 3MF Consortium's reference reader) for strict 3MF reading;
#  - pymeshlab (PyPI) for an independent self-intersection count.
# The Khronos glTF validator comes from scripts/install_node_tools.sh.
# Root or sudo for the Debian package. Missing tools make the tests fail (never skip).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
if ! command -v prusa-slicer >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  if ! $SUDO apt-get install -y -qq --no-install-recommends prusa-slicer >/dev/null; then
    echo "install_print_tools: could not install Debian prusa-slicer (apt-cache policy prusa-slicer)" >&2
    exit 1
  fi
fi
if ! .venv/bin/python -c "import lib3mf, pymeshlab" >/dev/null 2>&1; then
  PIP_CONSTRAINT="$here/constraints.txt" .venv/bin/python -m pip install -q "lib3mf>=2.3" "pymeshlab>=2023.12"
fi
