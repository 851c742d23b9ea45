#!/usr/bin/env bash
# Prepare, ONCE, on a machine with internet (PyPI), what the GPU benchmark machine lacks, into .whl/
# of this checkout; then print the ONE command that installs it there and runs both GPU benchmarks.
#
# The GPU machine (docs/gpu.md, "Measuring on a GPU machine"): python3 3.12 with torch 2.11 + CUDA,
# numpy, scipy, typer, rich, pyyaml, pillow; no VTK, nibabel, MONAI, pydantic, fast-simplification,
# cc3d, fill-voids, trimesh; no internet. What it lacks travels as wheels for CPython 3.12 /
# manylinux x86-64, plus a cut-down VTK: the VTK wheel is 140 MB, too big to carry, so only the
# libraries the CPU mesher loads (vtkCommonCore/DataModel, vtkFiltersCore/General and what they
# link, 27 shared objects, stripped) and vtkmodules' Python files are packed as
# .whl/vtk-cut-<version>-cp312.tar.xz (about 21 MB). Everything together stays under 64 MiB.
#
# .whl/ must not be committed: it is ignored through .git/info/exclude, which is per clone
# (this script adds the line; a fresh clone runs this script again).
#
# Usage (repository root):  bash benchmarks/prepare_gpu_machine.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VTK_VERSION=${VTK_VERSION:-9.7.2}
exclude="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
mkdir -p .whl
plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# one version of each (pinned to what the project's venv was tested with); --no-deps: every need named
pkgs=(nibabel==5.4.2 pydicom==3.0.2 monai==1.6.1 fast_simplification==0.2.0 fill_voids==2.1.2
      fastremap==1.21.0 connected-components-3d==4.1.1 trimesh==5.2.0 pydantic==2.14.4 pydantic_core==2.50.5
      annotated-types==0.7.0 typing-inspection==0.4.5 typing_extensions==4.16.0 pynrrd==1.1.3)
"$PY" -m pip download -q --no-deps "${plat[@]}" -d .whl "${pkgs[@]}"

# cut-down VTK: the CPU mesher's modules only
cut=".whl/vtk-cut-${VTK_VERSION}-cp312.tar.xz"
if [ ! -f "$cut" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -q --no-deps "${plat[@]}" -d "$tmp" "vtk==${VTK_VERSION}"
  (cd "$tmp" && unzip -q vtk-*.whl 'vtkmodules/*' -d x)
  "$PY" - "$tmp/x/vtkmodules" "$tmp/keep.txt" <<'EOF'
import os, re, subprocess, sys
root, out = sys.argv[1], sys.argv[2]
todo = [f for f in os.listdir(root)
        if re.match(r"vtk(CommonCore|CommonDataModel|FiltersCore|FiltersGeneral)\.cpython-312.*\.so$", f)]
seen = set()
while todo:  # the extension modules and every VTK library they link (DT_NEEDED, transitively)
    f = todo.pop()
    if f in seen:
        continue
    seen.add(f)
    dyn = subprocess.run(["readelf", "-d", os.path.join(root, f)], capture_output=True, text=True, check=True).stdout
    todo += [m for m in re.findall(r"\[(lib[^\]]+)\]", dyn) if os.path.exists(os.path.join(root, m))]
keep = sorted(seen) + ["__init__.py", "util", "numpy_interface"]
open(out, "w").write("\n".join("vtkmodules/" + k for k in keep) + "\n")
print(f"cut-down VTK: {len(seen)} shared objects")
EOF
  (cd "$tmp/x" && strip --strip-unneeded $(grep '\.so$' ../keep.txt) && tar cJf - -T ../keep.txt) >"$cut"
fi
du -ch .whl/* | tail -1
cat <<'EOF'

One command on the GPU machine (repository root; carry: [".whl"]; about 6 minutes; JSON in $OUT):

EOF
sed -n 's/^# CMD: //p' "$0"
# CMD: set -o pipefail; export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && tar xJf .whl/vtk-cut-*.tar.xz -C /tmp/site || exit; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt; uptime | tee -a $OUT/gpu.txt; python3 -m pytest -q -x -p no:cacheprovider tests/surface/test_gpu_finish_equivalence.py 2>&1 | tail -3 | tee $OUT/tests.txt; timeout 160 python3 benchmarks/bench_gpu_mesh.py --device cuda --repeats 3 --out $OUT/bench_gpu_mesh.json 2>&1 | tee $OUT/bench_gpu_mesh.log; timeout 330 python3 benchmarks/bench_gpu_e2e.py --device cuda --workdir /tmp/e2e --out $OUT/bench_gpu_e2e.json 2>&1 | tee $OUT/bench_gpu_e2e.log
