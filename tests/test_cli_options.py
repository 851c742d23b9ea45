"""The command line is built from declarations, and lazily: options from the options models
(``mesh`` from MeshConfig), ``--device``/``--series`` declared once, mesh formats and methods
from their registries, the user guide's option table generated; importing the CLI imports no
heavy stack (deterministic: checks ``sys.modules``, no timing)."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "vtk", "vtkmodules", "pydicom", "SimpleITK", "numpy", "monai", "medrecon.mesh_pipeline",
         "medrecon.io.loader", "pydantic")


def _modules_after(code: str) -> list[str]:
    probe = (code + "\nimport sys, json\n"
             f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_importing_the_cli_and_listing_commands_imports_no_heavy_stack():
    assert _modules_after("import medrecon.cli") == []
    # what `medrecon --help` builds: every command listed, none built from a model
    assert _modules_after("from medrecon.cli import build_command; build_command(None)") == []
    # `medrecon mesh --help` builds mesh from its model: pydantic and the format list, not the pipeline
    assert not {"torch", "vtk", "vtkmodules", "pydicom", "SimpleITK", "medrecon.mesh_pipeline"} & set(
        _modules_after("from medrecon.cli import build_command; build_command('mesh')"))


def _help(*args, capsys) -> str:
    from medrecon.cli import main

    try:
        main([*args, "--help"])
    except SystemExit as e:
        assert e.code in (0, None)
    return capsys.readouterr().out


def test_mesh_options_are_the_fields_of_meshconfig(capsys):
    from medrecon.cli import build_command
    from medrecon.mesh_config import MeshConfig
    from medrecon.options import cli_meta

    cmd = build_command("mesh").commands["mesh"]
    by_name = {p.name: p for p in cmd.params}
    for name, field in MeshConfig.model_fields.items():
        assert name in by_name, name
        assert " ".join((by_name[name].help or "").split()) == " ".join(field.description.split()), name
        if cli_meta(field).get("argument") or field.is_required():
            assert by_name[name].required, name
            continue
        default = field.get_default(call_default_factory=True)
        shown = ",".join(default) if isinstance(default, list) else default
        assert by_name[name].default == shown, name
    assert "config" in by_name  # --config: the recipe, on top of the model's options


def test_photo_options_are_the_fields_of_photooptions():
    import dataclasses

    from medrecon.cli import build_command
    from medrecon.photo import PhotoOptions

    cmd = build_command("photo").commands["photo"]
    by_name = {p.name: p for p in cmd.params}
    on_cli = [f for f in dataclasses.fields(PhotoOptions) if "cli" in f.metadata]
    assert {f.name for f in on_cli} == set(by_name) - {"image", "outdir"}
    for f in on_cli:
        assert by_name[f.name].default == f.default, f.name
        if f.name != "method":  # --method's help lists the registered methods
            assert by_name[f.name].help == f.metadata["help"], f.name


def test_flags_show_no_value_type_and_shared_options_have_one_help(capsys):
    from medrecon.options import DEVICE_HELP, SERIES_HELP

    for cmd in ("info", "convert", "mesh", "segment", "svr", "multiview", "cohort", "photo"):
        text = _help(cmd, capsys=capsys)
        assert "<bool>" not in text, cmd
    flat = {c: " ".join(_help(c, capsys=capsys).split()) for c in ("convert", "mesh", "segment", "svr", "multiview")}
    for c in ("mesh", "segment", "svr", "multiview"):
        assert " ".join(DEVICE_HELP.split()) in flat[c], c
    for c in ("convert", "mesh", "segment", "svr"):  # every command that reads one DICOM series
        assert "--series" in flat[c] and " ".join(SERIES_HELP.split()) in flat[c], c


def test_user_guide_table_of_mesh_options_is_generated_from_the_command():
    spec = __import__("importlib.util").util.spec_from_file_location("gen_option_tables",
                                                                     ROOT / "scripts" / "gen_option_tables.py")
    mod = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    page = mod.PAGE.read_text(encoding="utf-8")
    assert mod.render(page) == page, "docs/user-guide.md is out of date: python scripts/gen_option_tables.py"
    for flag in ("--config", "--subvoxel", "--binary-surface", "--exclude", "--obj-axes", "--no-preview"):
        assert f"`{flag}`" in page, flag


def test_a_new_mesh_format_and_a_new_method_appear_without_editing_the_cli(tmp_path, capsys):
    from medrecon.io.meshes import MESH_FORMATS
    from medrecon.methods import register_method, unregister_method

    MESH_FORMATS["xyzmesh"] = dataclasses.replace(MESH_FORMATS["stl"], name="xyzmesh", extensions=(".xyzmesh",))
    calls = []

    def mine(paths, output, **kw):
        calls.append((paths, kw["method"], kw["series"]))
        return SimpleNamespace(method="mine", params={"spacing_mm": 2.4999999386518}, volume=SimpleNamespace(
            shape=(4, 4, 4)), timings={"total": 0.25})

    register_method("svr", "mine", "a test method", mine)
    try:
        assert "xyzmesh" in " ".join(_help("mesh", capsys=capsys).split())
        assert "mine (a test method)" in " ".join(_help("svr", capsys=capsys).split())
        from medrecon.cli import main

        try:
            main(["svr", "a.nii.gz", "b.nii.gz", "-o", str(tmp_path / "x.nii.gz"), "--method", "MINE",
                  "--series", "3"])
        except SystemExit as e:
            assert e.code in (0, None)
        out = capsys.readouterr().out
        assert calls == [(["a.nii.gz", "b.nii.gz"], "mine", "3")]
        assert "2.5 mm" in out and "2.4999" not in out  # figures rounded to what they mean
    finally:
        MESH_FORMATS.pop("xyzmesh", None)
        unregister_method("svr", "mine")


def test_an_unknown_method_is_one_line_naming_the_choices(capsys):
    from medrecon.cli import main

    with pytest.raises(SystemExit) as e:
        main(["photo", "pic.png", "-o", "out", "--method", "nope"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--method 'nope': unknown method of photo" in err and "inflate, relief, slab" in err


def test_no_arguments_prints_the_list_of_commands(capsys):
    from medrecon.cli import main

    with pytest.raises(SystemExit):
        main([])
    out = capsys.readouterr().out
    assert out.startswith("Usage: medrecon") and "mesh" in out and "svr" in out
