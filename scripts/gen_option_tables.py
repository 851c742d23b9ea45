#!/usr/bin/env python
"""Write the user guide's table of every ``medrecon mesh`` option from the command itself.

The ``mesh`` command is built from :class:`medrecon.mesh_config.MeshConfig` (type, default and
help of each field) plus ``--config``; this script renders the built command's options into
``docs/user-guide.md`` between the ``BEGIN generated`` / ``END generated`` markers, so the page
cannot drift from ``medrecon mesh --help``. ``--check`` exits 1 when the page is out of date
(``tests/test_cli_options.py`` runs it).

usage: python scripts/gen_option_tables.py [--check]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGE = ROOT / "docs" / "user-guide.md"
BEGIN = "<!-- BEGIN generated: every option of mesh (scripts/gen_option_tables.py; do not edit by hand) -->"
END = "<!-- END generated -->"


def mesh_table() -> str:
    """The Markdown table of ``medrecon mesh``'s options, from the built command."""
    from medrecon.cli import build_command
    from medrecon.cli_options import option_rows

    cmd = build_command("mesh").commands["mesh"]
    lines = ["| option | value | default | meaning |", "|---|---|---|---|"]
    for name, typ, default, help_text in option_rows(cmd):
        opt = " / ".join(f"`{n}`" for n in name.replace(", ", "/").split("/"))
        lines.append(f"| {opt} | {typ} | {f'`{default}`' if default and default != '(required)' else default} "
                     f"| {help_text.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def render(page: str) -> str:
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{PAGE}: markers not found ({BEGIN!r} ... {END!r})")
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + mesh_table() + END + tail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gen_option_tables.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/user-guide.md is out of date")
    args = ap.parse_args(argv)
    old = PAGE.read_text(encoding="utf-8")
    new = render(old)
    if args.check:
        if new != old:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/gen_option_tables.py")
            return 1
        print("up to date")
        return 0
    if new != old:
        tmp = PAGE.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(PAGE)
        print(f"wrote {PAGE.relative_to(ROOT)}")
    else:
        print("up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
