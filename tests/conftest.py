"""Shared test fixtures.

Real scans live in ``../shared/data`` (relative to the project root). When they are missing a
test that needs them fails loudly under CI (``CI=true``) and is skipped only on a developer
machine without them.
"""
from __future__ import annotations

import os
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
