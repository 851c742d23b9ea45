"""Recipes, discovery, CSV manifests, planning and summaries (no cluster started)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from medrecon.cohort import config as C  # noqa: E402
import importlib

D = importlib.import_module("medrecon.cohort.discover")  # the package re-exports discover(), shadowing the module
from medrecon.cohort.manifest import Manifest
from medrecon.cohort.runner import parse_duration, parse_gpus, run
from medrecon.cohort.summary import outliers, write_summary
from medrecon.errors import ConfigError, InputError
from medrecon.mesh_pipeline import MeshConfig

RECIPES = Path(__file__).resolve().parents[2] / "configs"


def test_cohort_every_shipped_recipe_validates(tmp_path):
    files = C.list_recipes(RECIPES)
    names = {p.stem for p in files}
    assert {"ct-bone-print", "totalseg-meshes", "monai-bundle-meshes", "mr-head-surface"} <= names
    assert "svr-then-mesh" in names  # stacks -> svr -> mesh (tests/svr/test_svr_cohort.py)
    for p in files:
        rec = C.load_recipe(p, check_files=p.stem != "monai-bundle-meshes")  # its bundle is user-supplied
        cfg = MeshConfig(input="x", outdir="y", **C.fill_placeholders(rec.mesh, "/s/ct.nii.gz", "s"))
        assert cfg.preview is False
    bone = C.load_recipe("ct-bone-print")  # by name
    assert bone.mesh["formats"] == ["stl", "3mf"]
    empty = tmp_path / "slot.yaml"
    empty.write_text("# only comments\n")
    with pytest.raises(ConfigError, match="reserved slot"):
        C.load_recipe(empty)
    with pytest.raises(ConfigError, match="bundle folder not found"):
        C.load_recipe(RECIPES / "monai-bundle-meshes.yaml")


def test_cohort_bad_recipes_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: x\nmesh:\n  preset: ct-bone\n  smoothin: 0.4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*smoothin"):
        C.load_recipe(bad)
    bad.write_text("recipe: x\nmesh:\n  preset: ct-bone\n  input: /data\n")
    with pytest.raises(ConfigError, match="must not set input"):
        C.load_recipe(bad)
    bad.write_text("recipe: x\nmesh:\n  preset: no-such-preset\n")
    with pytest.raises(ConfigError, match="no-such-preset"):
        C.load_recipe(bad)
    bad.write_text("recipe: x\nmesh:\n  preset: ct-bone\n  threshold: '100:'\n")
    with pytest.raises(ConfigError, match="exactly one"):
        C.load_recipe(bad)
    bad.write_text("recipe: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        C.load_recipe(bad)


def test_cohort_recipe_paths_and_placeholders(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "t.json").write_text(json.dumps({"1": "liver", "2": "spleen"}))
    rec = tmp_path / "r.yaml"
    rec.write_text("recipe: r\nmesh:\n  labels: '{study_dir}/seg.nii.gz'\n  label_table: tables/t.json\n")
    r = C.load_recipe(rec)
    assert r.mesh["label_table"] == str((tmp_path / "tables" / "t.json").resolve())
    s = C.study_settings(r.mesh, {}, str(tmp_path / "p1" / "ct.nii.gz"), "p1")
    assert s["labels"] == str(tmp_path / "p1" / "seg.nii.gz") and s["input"].endswith("ct.nii.gz")
    # a per-study source replaces the recipe's
    s2 = C.study_settings(r.mesh, {"preset": "ct-bone"}, "/x", "x")
    assert s2["preset"] == "ct-bone" and "labels" not in s2
    # the hash is canonical (explicit default == omitted) and sees real changes
    a = C.settings_hash({"preset": "ct-bone", "input": "/a"})
    assert a == C.settings_hash({"preset": "ct-bone", "smoothing": 0.5, "input": "/b"})
    assert a != C.settings_hash({"preset": "ct-bone", "smoothing": 0.4})


def test_cohort_mesh_config_from_recipe_cli_overrides():
    values = dict(input="/in/ct.nii.gz", outdir="/o", preset=None, threshold="200:", formats=["obj"], smoothing=0.5,
                  preview=True)
    cfg = C.config_from_recipe("ct-bone-print", values, given={"threshold", "formats"})
    assert cfg.threshold == "200:" and cfg.preset is None  # typed source replaces the recipe's
    assert cfg.formats == ["obj"] and cfg.reduction == 0.5 and cfg.preview is False  # rest from the recipe
    cfg2 = C.config_from_recipe("ct-bone-print", values, given={"preview"})
    assert cfg2.preset == "ct-bone" and cfg2.preview is True and cfg2.formats == ["stl", "3mf"]


def test_cohort_discover_folder_layouts(tmp_path):
    root = tmp_path / "c"
    (root / "p1").mkdir(parents=True)
    (root / "p1" / "ct.nii.gz").write_bytes(b"x")
    (root / "p1" / "notes.txt").write_text("ignored")
    (root / "p2 (repeat)").mkdir()
    (root / "p2 (repeat)" / "IM1").write_bytes(b"d")
    (root / "p2 (repeat)" / "IM2").write_bytes(b"d")
    (root / "loose.nrrd").write_bytes(b"n")
    (root / ".hidden").mkdir()
    (root / "out").mkdir()
    (root / "old_out").mkdir()
    (root / "old_out" / ".medrecon-output").touch()  # an earlier run's output folder
    (root / "old_out" / "x.nii.gz").write_bytes(b"x")
    st = D.discover(root, exclude=[root / "out"])
    assert [(s.study_id, Path(s.path).name) for s in st] == [("loose", "loose.nrrd"), ("p1", "ct.nii.gz"),
                                                             ("p2_repeat", "p2 (repeat)")]
    with pytest.raises(InputError, match="no studies"):
        D.discover(root / "out")
    with pytest.raises(InputError, match="not found"):
        D.discover(root / "missing")


def test_cohort_discover_series_layout(tmp_path):
    from medrecon.io.dicom.write import write_dicom_series
    from medrecon.phantoms import sphere_phantom

    vol = sphere_phantom(radius=6, spacing=(2.0, 2.0, 2.0), supersample=1).volume
    d = tmp_path / "dump" / "mixed"
    write_dicom_series(vol, d, series_number=3, prefix="A")
    write_dicom_series(vol, d, series_number=7, prefix="B")
    write_dicom_series(vol, tmp_path / "dump" / "mixed" / "sub", series_number=9, prefix="C")
    st = D.discover(tmp_path / "dump", layout="series")
    assert sorted(s.study_id for s in st) == ["mixed_s1", "mixed_s2", "mixed_sub_s1"]
    from medrecon.io.loader import load

    for s in st:  # each study's folder + series selection loads
        assert load(s.path, series=s.overrides["series"]).shape == vol.shape
    assert {(Path(s.path).name, s.overrides["series"]) for s in st} == {("mixed", "#1"), ("mixed", "#2"), ("sub", "#1")}


def test_cohort_csv_manifest(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "seg.nii.gz").write_bytes(b"s")
    m = tmp_path / "m.csv"
    m.write_text("study_id,path,preset,structures,smoothing,labels\n"
                 "A-1,a,ct-bone,,0.3,\n"
                 "B 2,/abs/b,,liver;spleen,,seg.nii.gz\n")
    st = D.discover(m)
    assert [s.study_id for s in st] == ["A-1", "B_2"]
    assert st[0].path == str(tmp_path / "a") and st[0].overrides == {"preset": "ct-bone", "smoothing": 0.3}
    assert st[1].overrides == {"structures": ["liver", "spleen"], "labels": str(tmp_path / "seg.nii.gz")}
    m.write_text("study_id,path,colour\nA,a,red\n")
    with pytest.raises(ConfigError, match="unknown manifest column.*colour"):
        D.discover(m)
    m.write_text("study_id,path\nA,a\nA,b\n")
    with pytest.raises(ConfigError, match="share the id"):
        D.discover(m)
    m.write_text("id,file\nA,a\n")
    with pytest.raises(ConfigError, match="'path' columns"):
        D.discover(m)


def test_cohort_fingerprint_sees_changes(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "a").write_bytes(b"1234")
    f0 = D.stat_fingerprint([d])
    assert D.stat_fingerprint([d]) == f0
    (d / "b").write_bytes(b"")
    f1 = D.stat_fingerprint([d])
    assert f1 != f0
    st = (d / "a").stat()
    os.utime(d / "a", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert D.stat_fingerprint([d]) != f1


def test_cohort_dry_run_writes_nothing(tmp_path):
    root = tmp_path / "many"
    for i in range(60):
        (root / f"s{i:03d}").mkdir(parents=True)
        (root / f"s{i:03d}" / "ct.nii.gz").write_bytes(b"x")
    out = tmp_path / "out"
    events = []
    res = run(root, out, dry_run=True, progress=events.append)
    assert res.dry_run and res.counts["total"] == 60 and res.counts["run"] == 60
    assert not out.exists()
    assert events and events[0].kind == "start" and events[0].to_run == 60


def test_cohort_durations_and_gpus(monkeypatch):
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400 and parse_duration("45s") == 45
    assert parse_duration(12) == 12 and parse_duration(None) is None and parse_duration("none") is None
    with pytest.raises(ConfigError):
        parse_duration("soon")
    assert parse_gpus("none") == [] and parse_gpus("0,1") == [0, 1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert parse_gpus("auto") == [0, 1]  # renumbered as the workers see them
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert parse_gpus("auto") == []
    with pytest.raises(ConfigError):
        parse_gpus("first")


def test_cohort_outliers_and_summary(tmp_path):
    vals = [10.0, 11.0, 9.5, 10.5, 10.2, 30.0]
    assert outliers(vals).tolist() == [False] * 5 + [True]
    assert not outliers([1.0, 100.0]).any()  # too few studies to call anything an outlier
    rows = [{"study_id": f"s{i}", "status": "done", "timings": {"compute_s": 1.0}, "warnings": [],
             "summary": [{"structure": "bone", "label": 1, "volume_mm3": v * 1000, "area_mm2": 5.0,
                          "triangles": 100, "watertight": True}]} for i, v in enumerate(vals)]
    rows.append({"study_id": "bad", "status": "failed", "error": "x.dcm: truncated", "warnings": [], "summary": None})
    csv_p, html_p, png = write_summary(tmp_path, rows)
    lines = csv_p.read_text().splitlines()
    assert lines[6].startswith("s5,done,bone,1,30000.000") and ",yes," in lines[6]
    assert lines[1].endswith(",no,,") and lines[7].startswith("bad,failed") and "truncated" in lines[7]
    html = html_p.read_text()
    assert "x.dcm: truncated" in html and html.count("class='out'") == 1
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cohort_manifest_roundtrip(tmp_path):
    with Manifest(tmp_path / "m.sqlite") as m:
        m.mark_submitted([("a", "fp", "ch")], "r1")
        assert m.get("a")["status"] == "running" and m.get("a")["attempts"] == 1
        m.mark_done("a", "fp", "ch", "0.1", "r1", {"compute_s": 1.5}, ["w"], [{"structure": "bone"}])
        m.mark_submitted([("b", "fp2", "ch")], "r1")
        assert m.reset_running() == 1
        m.mark_failed("c", "fp3", "ch", "0.1", "r1", "bad\nfile")
    with Manifest(tmp_path / "m.sqlite", readonly=True) as m:
        rows = m.all()
    assert rows["a"]["status"] == "done" and rows["a"]["computed"] == 1 and rows["a"]["timings"] == {"compute_s": 1.5}
    assert rows["b"]["status"] == "pending" and rows["c"]["error"] == "bad file"
    assert np.isfinite(rows["a"]["timings"]["compute_s"])


def test_cohort_mesh_cli_reads_a_recipe(tmp_path):
    """`medrecon mesh --config`: the recipe's settings apply, options typed on the command line win."""
    from medrecon.cli import main
    from medrecon.io.volumes import save_volume
    from medrecon.phantoms import sphere_phantom

    img = save_volume(sphere_phantom(radius=10, spacing=(2.0, 2.0, 2.0), supersample=2).volume, tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    try:
        main(["mesh", str(img), "-o", str(out), "--config", "ct-bone-print", "--formats", "stl"])
    except SystemExit as ex:  # success may return or exit 0
        assert not ex.code
    assert (out / "bone.stl").is_file() and not (out / "bone.3mf").exists()  # --formats beat the recipe's stl,3mf
    assert not (out / "preview.png").exists()  # preview: false from the recipe
    cfg = json.loads((out / "report.json").read_text())["config"]
    assert cfg["reduction"] == 0.5 and cfg["remove_table"] is True and cfg["keep_volume"] is True
    assert cfg["largest"] is False and cfg["formats"] == ["stl"]
    with pytest.raises(SystemExit) as ex:
        main(["mesh", str(img), "-o", str(tmp_path / "o2"), "--config", str(tmp_path / "missing.yaml")])
    assert ex.value.code == 2


def test_cohort_recipes_follow_the_printing_checklist():
    """Issue 22: a CT recipe never uses `largest` (it keeps one bone and drops every separate one);
    a recipe that makes printable formats removes the table and keeps the volume, and the
    example in docs/cohort.md says the same."""
    for p in C.list_recipes(RECIPES):
        mesh = C.load_recipe(p, check_files=False).mesh
        ct = str(mesh.get("preset", "")).startswith("ct-") or "threshold" in mesh
        assert not (ct and mesh.get("largest")), p.name
        if ct and {"stl", "3mf"} & set(mesh.get("formats", [])):
            assert mesh.get("remove_table") and mesh.get("keep_volume"), p.name
    doc = (RECIPES.parent / "docs" / "cohort.md").read_text()
    example = doc.split("recipe: ct-bone-print", 1)[1].split("```", 1)[0]
    assert "largest: true" not in example and "remove_table: true" in example


def test_cohort_report_zero_failed_is_not_red(tmp_path):
    """Issue 22: report.html showed "0 failed" in red; red only when a study failed."""
    row = {"study_id": "s0", "status": "done", "timings": {"compute_s": 1.0}, "warnings": [],
           "summary": [{"structure": "bone", "label": 1, "volume_mm3": 1000.0, "area_mm2": 5.0,
                        "triangles": 100, "watertight": True}]}
    _, html_p, _ = write_summary(tmp_path / "a", [row])
    html = html_p.read_text()
    assert "0 failed" in html and "class='bad'>0<" not in html
    bad = {"study_id": "b", "status": "failed", "error": "x", "warnings": [], "summary": None}
    _, html_p, _ = write_summary(tmp_path / "b", [row, bad])
    assert "<b class='bad'>1</b> failed" in html_p.read_text()


def test_cohort_eta_counts_down_while_a_study_runs():
    """Issue 22: the ETA grew while one long study ran (elapsed / finished * remaining); it now
    counts down from the last finished study, never below zero, and is None before any finished."""
    from medrecon.cohort.progress import eta_seconds

    assert eta_seconds(0, 5, 0.0, 0.0, 10.0) is None
    # 2 studies finished after 20 s (10 s each), 3 to go: 30 s left at t=20, then counting down
    etas = [eta_seconds(2, 3, 0.0, 20.0, now) for now in (20.0, 25.0, 40.0, 60.0, 500.0)]
    assert etas == [30.0, 25.0, 10.0, 0.0, 0.0]
    assert all(a >= b for a, b in zip(etas, etas[1:]))
    assert eta_seconds(5, 0, 0.0, 50.0, 51.0) == 0.0
