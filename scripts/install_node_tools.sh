#!/usr/bin/env bash
# Node tools used by the tests, installed into the git-ignored folder .node/ (idempotent).
#   gltf-validator (Khronos glTF validator, npm) -> .node/node_modules/gltf-validator
# Needs node + npm (Debian: nodejs npm). Without them it prints a note and exits 0; the
# tests that need the validator then fail with a message saying how to install it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$here/.node"
want_validator="2.0.0-dev.3.10"
if ! command -v npm >/dev/null 2>&1; then
  echo "install_node_tools: npm not found; install Debian packages nodejs npm for the glTF validator" >&2
  exit 0
fi
have="$(cat "$dest/node_modules/gltf-validator/package.json" 2>/dev/null | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' | head -1 || true)"
if [ "$have" = "$want_validator" ]; then
  exit 0
fi
mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{"name": "medrecon-node-tools", "private": true}' > "$dest/package.json"
npm install --prefix "$dest" --no-audit --no-fund --silent "gltf-validator@$want_validator" >/dev/null
echo "install_node_tools: gltf-validator $want_validator in $dest"
