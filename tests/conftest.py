"""Shared test fixtures, and how the tree of tests is collected.

Tests mirror the package (``tests/io/``, ``tests/surface/``...). File names are unique across
the tree (pytest's default "prepend" import mode imports each test file by its base name).

A test module may ``from conftest import X``: it gets its nearest ``conftest.py`` (its own
folder's, then the parents' up to this one), even though every folder's conftest is named
``conftest`` (see :func:`pytest_collectstart`).

Real scans live in ``../shared/data`` (relative to the project root). When they are missing a
test that needs them fails loudly under CI (``CI=true``) and is skipped only on a developer
machine without them.
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDRECON_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data; fails (CI) or skips (local) when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        msg = f"real test data missing: {p} (see ../shared/data/README.md)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def shared_data():
    """Callable fixture: ``shared_data('ct_head_ge_gantry_tilt_variable_spacing', 'x')``."""
    return shared_path


# --------------------------------------------------------------------------------------------
# `from conftest import X` means the nearest conftest.py
# --------------------------------------------------------------------------------------------
_CONFTESTS: dict[Path, types.ModuleType] = {}


def pytest_plugin_registered(plugin, manager):
    f = getattr(plugin, "__file__", None)
    if isinstance(plugin, types.ModuleType) and f and Path(f).name == "conftest.py":
        _CONFTESTS[Path(f).resolve().parent] = plugin


def _conftest_chain(folder: Path) -> list[types.ModuleType]:
    """Conftest modules from ``folder`` up to the tests root, nearest first."""
    chain = []
    for d in [folder, *folder.parents]:
        if d in _CONFTESTS:
            chain.append(_CONFTESTS[d])
        if d == ROOT:
            break
    return chain


def _view(chain: list[types.ModuleType]) -> types.ModuleType:
    view = types.ModuleType("conftest", "nearest conftest.py first, then its parents")
    view.__file__ = chain[0].__file__

    def __getattr__(name: str):
        for mod in chain:
            if name in vars(mod):
                return vars(mod)[name]
        raise AttributeError(f"no conftest.py from {chain[0].__file__} upwards defines {name!r}")

    view.__getattr__ = __getattr__  # module-level __getattr__ (PEP 562)
    return view


def pytest_collectstart(collector):
    """Before a test module is imported, make ``conftest`` its own folder's conftest chain."""
    if isinstance(collector, pytest.Module):
        chain = _conftest_chain(Path(collector.path).resolve().parent)
        if chain:
            sys.modules["conftest"] = _view(chain)
