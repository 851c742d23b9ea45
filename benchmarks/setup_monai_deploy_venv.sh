#!/usr/bin/env bash
# Separate venv for the MONAI Deploy peer of bench_mesh.py. monai-deploy-app-sdk installs into
# MONAI's package folder and needs highdicom; installing it into .venv breaks `import monai`.
# Usage: bash benchmarks/setup_monai_deploy_venv.sh [/tmp/mdvenv]  -> prints the python to pass
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/mdvenv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -c constraints.txt torch==2.13.0
"$venv/bin/pip" install -q -c constraints.txt monai-deploy-app-sdk==4.0.0 highdicom numpy-stl \
  scikit-image trimesh SimpleITK nibabel monai==1.6.1
echo "$venv/bin/python"
