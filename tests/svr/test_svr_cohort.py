"""The svr-then-mesh recipe: studies of thick-slice stacks -> isotropic volume -> mesh, on Dask."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medrecon.cohort import config as C
from medrecon.errors import ConfigError

RECIPES = Path(__file__).resolve().parents[2] / "configs"


def test_svr_then_mesh_recipe_loads_with_its_svr_stage(tmp_path):
    rec = C.load_recipe(RECIPES / "svr-then-mesh.yaml")
    assert rec.svr["method"] == "svr" and rec.svr["stacks"] == "*.nii.gz" and rec.svr["spacing"] == 1.0
    s = C.recipe_settings(RECIPES / "svr-then-mesh.yaml")
    assert s["svr"]["method"] == "svr" and s["preset"] == "mr-head"
    # the stage's settings count in the config hash (changing the method reruns the study)
    other = dict(s, svr=dict(s["svr"], method="srr"))
    assert C.settings_hash(s) != C.settings_hash(other)
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: x\nsvr:\n  stacks: '*.nii.gz'\n  method: magic\nmesh:\n  preset: mr-head\n")
    with pytest.raises(ConfigError, match="magic"):
        C.load_recipe(bad)
    bad.write_text("recipe: x\nsvr:\n  stackz: '*.nii.gz'\nmesh:\n  preset: mr-head\n")
    with pytest.raises(ConfigError, match="stackz"):
        C.load_recipe(bad)


@pytest.mark.slow
def test_svr_then_mesh_cohort_on_simulated_studies(tmp_path):
    from medrecon.cohort.runner import run
    from medrecon.io.loader import load
    from medrecon.io.volumes import save_volume
    from medrecon.svr import simulate_stacks
    from medrecon.volume import Volume

    root = tmp_path / "studies"
    for i, r in enumerate((9.0, 11.0, 13.0)):  # balls of different radii (mm), 1.5 mm truth
        n = 28
        ii = (np.indices((n, n, n)) - (n - 1) / 2) * 1.5
        ball = (np.sqrt((ii ** 2).sum(0)) < r).astype(np.float32) * 0.8
        gt = Volume(ball, np.diag([1.5, 1.5, 1.5, 1.0]), {"modality": "MR"})
        sim = simulate_stacks(gt, 4.5, noise_sigma=0.01, seed=i)
        d = root / f"study{i}"
        d.mkdir(parents=True)
        for k, s in enumerate(sim.stacks):
            save_volume(s, d / f"stack{k}.nii.gz")
    recipe = tmp_path / "svr.yaml"  # the shipped recipe with the fast method and a coarser grid
    text = (RECIPES / "svr-then-mesh.yaml").read_text().replace("method: svr", "method: srr").replace(
        "spacing: 1.0", "spacing: 1.5")
    recipe.write_text(text)
    out = tmp_path / "out"
    res = run(root, out, config=recipe, workers=1, gpus="none", dashboard=False)
    assert res.counts.get("done") == 3, res.counts
    vols = []
    for i in range(3):
        sd = out / "studies" / f"study{i}"
        v = load(str(sd / "svr" / f"study{i}.nii.gz"))
        assert np.allclose(v.spacing, 1.5, atol=1e-3)  # isotropic from 4.5 mm stacks
        rep = json.loads((sd / "svr" / f"study{i}.json").read_text())
        assert rep["method"] == "srr" and len(rep["stacks"]) == 3
        stls = list(sd.glob("*.stl"))
        assert stls, list(sd.iterdir())
        vols.append(float(np.asarray(v.array > 0.4).sum()))
    assert vols[0] < vols[1] < vols[2]  # each study's own stacks made its volume
