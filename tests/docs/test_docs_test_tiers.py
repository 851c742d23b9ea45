"""The README opens with the two set-up commands, then names the fast test tier (issue 22): the
`slow` marker is declared, and `./dev test` passes its arguments (``-m "not slow"``) to pytest."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_readme_names_the_fast_tier_after_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [ln.split()[:2] for ln in block] == [["./dev", "demo"], ["./dev", "test"]]
    after = text.split("```bash\n", 1)[1].split("```", 1)[1].lstrip()
    assert after.startswith('Fast tier while developing: `./dev test -m "not slow"`')
    assert '"slow: ' in (ROOT / "pyproject.toml").read_text()
    dev = (ROOT / "dev").read_text()
    assert 'pytest -n 2 --dist loadgroup "$@"' in dev
