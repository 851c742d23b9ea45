"""Issue 17, item 1: up-front refusals and warnings a new user needs (no silent surprises).

Generated data throughout (a small body phantom with bone pieces and a scanner table), plus the
real TotalSegmentator CT from ../shared/data for the table detector.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from medrecon.errors import ConfigError, SeriesSelectionError
from medrecon.volume import Volume


def body_ct(shape=(90, 70, 30)) -> Volume:
    """Air, an elliptic soft-tissue body, a spine, two 'ribs', two 'femurs' (separate pieces) and
    a flat table under the body's back (+y is posterior in LPS), all in HU on a 2 mm grid."""
    a = np.full(shape, -1000.0, np.float32)
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    body = ((i - 45) / 35.0) ** 2 + ((j - 30) / 22.0) ** 2 <= 1
    a[body] = 40
    a[41:49, 40:48, :] = 700          # spine
    a[18:22, 22:26, 5:25] = 700       # rib-like pieces, separate
    a[68:72, 22:26, 5:25] = 700
    a[25:31, 30:36, 2:12] = 900       # femur-like pieces
    a[59:65, 30:36, 2:12] = 900
    a[5:85, 56:59, :] = 600           # table: flat, outside the body (body ends at j = 52)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    return Volume(a, aff)


def test_find_table_keeps_every_bone_piece():
    from medrecon.segment.cleanup import find_table, keep_largest

    vol = body_ct()
    mask = vol.array > 226
    table, found = find_table(mask, vol.array, vol.affine)
    truth_table = np.zeros_like(mask)
    truth_table[5:85, 56:59, :] = True
    assert len(found) == 1 and np.array_equal(table, truth_table)
    assert found[0]["air_fraction"] > 0.3
    # what --largest costs: it keeps the table here and loses every bone
    assert np.array_equal(keep_largest(mask), truth_table)


def test_remove_table_through_the_pipeline(tmp_path):
    from medrecon.mesh_pipeline import run_mesh

    vol = body_ct()
    src = tmp_path / "ct.nii.gz"
    from medrecon.io.volumes import save_volume

    save_volume(vol, src)
    res = run_mesh({"input": str(src), "outdir": str(tmp_path / "out"), "preset": "ct-bone",
                    "remove_table": True, "preview": False})
    arr = np.asarray(res.labelmap.array) > 0
    assert not arr[5:85, 56:59, :].any()                   # table gone
    assert arr[41:49, 40:48, :].all() and arr[18:22, 22:26, 5:25].all() and arr[59:65, 30:36, 2:12].all()
    assert len(res.report["segmentation"]["table_removed"]) == 1


def test_remove_table_on_the_real_ct_keeps_more_than_largest():
    from medrecon import load
    from medrecon.segment.cleanup import keep_largest, remove_table, voxel_volume_mm3
    from medrecon.segment.presets import apply_preset

    vol = load(shared_path("ct_abdomen_totalsegmentator_refseg", "example_ct_dicom"))
    lab, _ = apply_preset(vol, "ct-bone")
    mask = np.asarray(lab.array) > 0
    vv = voxel_volume_mm3(vol.affine) / 1000.0
    kept, found = remove_table(mask, vol.array, vol.affine)
    largest = keep_largest(mask)
    # measured: 207 cm3 of ct-bone, --largest keeps ~50 (a vertebra), the table is ~75 cm3
    assert mask.sum() * vv > 190
    assert largest.sum() * vv < 60
    assert 100 < kept.sum() * vv < 150 and len(found) >= 2
    assert 60 < sum(f["volume_mm3"] for f in found) / 1000.0 < 100  # the table's pieces
    for f in found:  # every removed piece is flat and surrounded by air
        assert f["size_mm"][1] < 0.5 * f["size_mm"][0] and f["air_fraction"] > 0.3


def test_series_number_that_does_not_exist_is_refused(tmp_path):
    from medrecon import load
    from medrecon.io.dicom.write import write_dicom_series

    vol = body_ct((20, 16, 6))
    write_dicom_series(vol, tmp_path / "a", series_number=7)
    write_dicom_series(Volume(vol.array[:, :, :4].copy(), vol.affine), tmp_path / "b", series_number=9)
    with pytest.raises(SeriesSelectionError) as exc:
        load(tmp_path, series=2)
    msg = str(exc.value)
    assert "no SeriesNumber 2" in msg and "7, 9" in msg and "'#2'" in msg
    assert load(tmp_path, series="#2").shape[2] in (4, 6)
    with pytest.raises(SeriesSelectionError) as exc:
        load(tmp_path)
    assert "--series N" in str(exc.value) and "series=N" not in str(exc.value)


def test_joint_with_reduction_or_keep_volume_is_refused():
    from medrecon.mesh_pipeline import MeshConfig

    with pytest.raises(ConfigError, match="--joint"):
        MeshConfig(input="x", outdir="y", labels="l.nii.gz", joint=True, reduction=0.5)
    with pytest.raises(ConfigError, match="--joint"):
        MeshConfig(input="x", outdir="y", labels="l.nii.gz", joint=True, keep_volume=True)
    MeshConfig(input="x", outdir="y", labels="l.nii.gz", joint=True)  # alone: fine


def test_structures_are_checked_before_inference_and_list_valid_names(tmp_path):
    from medrecon.segment.sources import from_bundle

    b = tmp_path / "bundle"
    (b / "configs").mkdir(parents=True)
    (b / "models").mkdir()
    meta = {"network_data_format": {"outputs": {"pred": {"channel_def": {
        "0": "background", "1": "spleen", "2": "liver", "3": "femur left"}}}}}
    (b / "configs" / "metadata.json").write_text(json.dumps(meta))
    (b / "configs" / "inference.json").write_text("{}")   # never read: the check comes first
    (b / "models" / "model.pt").write_bytes(b"not a model")
    vol = body_ct((10, 10, 4))
    with pytest.raises(ConfigError) as exc:
        from_bundle(vol, str(b), structures=["femur_right"])
    msg = str(exc.value)
    assert "femur_right" in msg and "1=spleen" in msg and "3=femur_left" in msg


def test_open_surfaces_and_volume_loss_get_advice():
    from medrecon.mesh import SurfaceModel
    from medrecon.surface.advice import mesh_advice

    def model(name, **qa):
        return SurfaceModel(name, np.zeros((3, 3)), np.array([[0, 1, 2]]), qa=qa)

    ok = model("skull", watertight=True, volume_diff_pct=-1.0)
    assert mesh_advice([ok]) == []
    w = mesh_advice([ok, model("rib", watertight=False, volume_diff_pct=-14.5),
                     model("cartilage", watertight=True, volume_diff_pct=-28.0)], smoothing=0.5)
    assert len(w) == 2
    assert "not closed" in w[0] and "rib" in w[0] and "skull" not in w[0] and "cartilage" not in w[0]
    assert "cartilage -28.0%" in w[1] and "--keep-volume" in w[1] and "rib" not in w[1]
    welded = mesh_advice([model("femur", watertight=True, watertight_welded=False, volume_diff_pct=-9.0)])
    assert len(welded) == 1 and "not closed" in welded[0] and "femur" in welded[0]  # as an STL slicer sees it
    j = mesh_advice([model("rib", watertight=False, volume_diff_pct=0.0)], joint=True)
    assert "without --joint" in j[0]
