#!/usr/bin/env bash
# Debian packages the tests need. Installs only what is missing.
#  - chromium + fonts: the offline HTML viewer test (headless, SwiftShader WebGL).
#  - Mesa EGL/GL (libegl1, libegl-mesa0, libgl1-mesa-dri): VTK's pip wheel renders the PNG
#    previews offscreen through EGL on the CPU (llvmpipe) when there is no display or GPU;
#    libosmesa6 is its second fallback.
#  Usage: install_system_deps.sh [all|render]   (render: only what the PNG previews need)
set -euo pipefail
what="${1:-all}"
missing=()
if [ "$what" = "all" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
fi
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    [ "$what" = "render" ] || exit 1
    echo "note: could not install ${missing[*]}; previews use the built-in software renderer" >&2
  fi
fi
