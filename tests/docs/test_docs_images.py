"""Issue 17: every picture in docs/img comes from one documented command (scripts/make_doc_images.py)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("make_doc_images", ROOT / "scripts" / "make_doc_images.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_docs_picture_has_a_generator():
    made = {p for _, pics in _script().GROUPS.values() for p in pics}
    on_disk = {p.name for p in (ROOT / "docs" / "img").glob("*.png")}
    assert on_disk <= made, f"pictures without a generator: {sorted(on_disk - made)}"
    used = set()
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        used |= set(re.findall(r"img/([\w.-]+\.png)", page.read_text(encoding="utf-8")))
    assert used <= made, f"pictures the docs show but nothing makes: {sorted(used - made)}"


def test_the_command_is_documented_and_lists_its_groups():
    assert "scripts/make_doc_images.py" in (ROOT / "README.md").read_text(encoding="utf-8")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_doc_images.py"), "--list"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "meshing_torso_bone.png" in r.stdout and "demo_bone_preview.png" in r.stdout
