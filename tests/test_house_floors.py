"""The house rules of docs/architecture.md, checked on the source (``ast``; nothing is imported):

* floors: a module imports only its own floor or below (``io`` never imports segment, surface,
  viz, pipeline, cohort, svr, photo, multiview...);
* library code never imports rich (only the CLI's presentation modules do);
* no import cycles between modules (function-level imports included);
* no module over 650 lines; ``mesh_pipeline.py`` at most 350.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "medrecon"

#: Floor of each top-level part of the package (module or sub-package). 0 is the ground floor.
FLOORS = {
    # ground floor: value types and conventions
    "volume": 0, "labelmap": 0, "mesh": 0, "orientation": 0, "errors": 0, "version": 0, "devices": 0, "progress": 0, "options": 0, "methods": 0,
    # file formats at the edges
    "io": 1,
    # the work: segmentation, surfaces, reconstruction methods, and what they share
    "segment": 2, "surface": 2, "inr": 2, "svr": 2, "photo": 2, "multiview": 2,
    "texture": 2, "provenance": 2, "report": 2, "phantoms": 2,
    # composition and presentation
    "cohort": 3, "viz": 3, "mesh_pipeline": 3, "demo": 3, "cli": 3, "cli_display": 3, "cli_options": 3, "mesh_config": 3, "recipes": 3, "__main__": 3,
}
#: Only these modules may import rich (the CLI's presentation).
RICH_ALLOWED = {"medrecon.cli", "medrecon.cli_display"}
MAX_LINES = 650
PIPELINE_MAX_LINES = 350


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The medrecon module an import refers to (longest existing prefix), or None."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in MODULES:
            return cand
        parts.pop()
    return None


def _imports(mod: str, path: Path) -> set[str]:
    """Every name imported anywhere in the module (top level and inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # ``from X import y``: the module X.y when y is a module, else X itself
            for a in node.names:
                sub = f"{prefix}.{a.name}"
                out.add(sub if sub in MODULES else prefix)
    return out


def _graph() -> dict[str, set[str]]:
    graph = {}
    for mod, path in MODULES.items():
        deps = set()
        for name in _imports(mod, path):
            if name == "medrecon" or not name.startswith("medrecon."):
                continue
            target = _resolve(name)
            if target and target != mod and target != "medrecon":
                deps.add(target)
        graph[mod] = deps
    return graph


GRAPH = _graph()


def _part(mod: str) -> str:
    return mod.split(".")[1] if "." in mod else ""


def _floor(mod: str) -> int | None:
    return FLOORS.get(_part(mod))


def test_every_part_has_a_floor():
    """A new top-level module or package must be placed on a floor here and in docs/architecture.md."""
    unplaced = sorted({_part(m) for m in MODULES if m != "medrecon" and _part(m) not in FLOORS})
    assert not unplaced, f"put these on a floor (FLOORS and docs/architecture.md): {unplaced}"


def test_nothing_imports_upward():
    bad = []
    for mod, deps in GRAPH.items():
        f = _floor(mod)
        if f is None:
            continue
        for d in deps:
            fd = _floor(d)
            if fd is not None and fd > f:
                bad.append(f"{mod} (floor {f}) imports {d} (floor {fd})")
    assert not bad, "\n".join(sorted(bad))


@pytest.mark.parametrize("upper", ["segment", "surface", "viz", "mesh_pipeline", "cohort", "svr", "photo",
                                   "multiview", "inr", "report", "provenance", "texture", "cli"])
def test_io_imports_no_upper_floor(upper):
    bad = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if _part(m) == "io"
                 for d in deps if _part(d) == upper)
    assert not bad, bad


def test_only_the_cli_imports_rich():
    bad = []
    for mod, path in MODULES.items():
        if mod in RICH_ALLOWED:
            continue
        if any(n == "rich" or n.startswith("rich.") for n in _imports(mod, path)):
            bad.append(mod)
    assert not bad, f"library modules importing rich (report progress through a callback instead): {bad}"


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_module_sizes():
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    big = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them): {big}"
    assert sizes["medrecon.mesh_pipeline"] <= PIPELINE_MAX_LINES, sizes["medrecon.mesh_pipeline"]


def test_the_checker_sees_imports():
    """The analysis itself: known edges are found (so the tests above can fail)."""
    assert "medrecon.io.meshes" in GRAPH["medrecon.mesh_pipeline"]
    assert "medrecon.volume" in GRAPH["medrecon.io.nrrd"]
    assert "medrecon.io.dicom.source" in GRAPH["medrecon.io.dicom.headers"]
    assert _floor("medrecon.io.dicom.scan") == 1 and _floor("medrecon.mesh_pipeline") == 3


def test_test_file_names_are_unique():
    """pytest's default import mode imports test files by base name: two alike would clash."""
    tests = Path(__file__).resolve().parent
    seen: dict[str, Path] = {}
    clashes = []
    for p in sorted(tests.rglob("*.py")):
        if p.name in ("conftest.py", "__init__.py") or "__pycache__" in p.parts:
            continue
        if p.name in seen:
            clashes.append(f"{seen[p.name].relative_to(tests)} ~ {p.relative_to(tests)}")
        seen[p.name] = p
    assert not clashes, clashes
