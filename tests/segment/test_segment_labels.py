"""Label tables: built-in TotalSegmentator table, Slicer/CSV/JSON/nnU-Net readers, selection."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import shared_path
from medrecon.errors import ConfigError
from medrecon.io.label_tables import load_label_table, write_slicer_ctbl
from medrecon.labelmap import GROUPS, LabelInfo, select_structures


def test_totalsegmentator_table_has_117_classes():
    t = load_label_table("totalsegmentator")
    assert sorted(t) == list(range(1, 118))
    assert load_label_table("total")[5].name == "liver"
    # a few ids as published in TotalSegmentator's class map
    assert (t[1].name, t[25].name, t[50].name, t[51].name, t[91].name, t[92].name, t[115].name, t[117].name) == (
        "spleen", "sacrum", "vertebrae_C1", "heart", "skull", "rib_left_1", "rib_right_12", "costal_cartilages")
    assert len({li.name for li in t.values()}) == 117
    for li in t.values():
        assert all(0.0 <= c <= 1.0 for c in li.color)


@pytest.mark.realdata
def test_totalsegmentator_ids_match_the_reference_masks():
    """Each per-structure mask of TotalSegmentator's own output covers exactly its id in the multilabel map."""
    folder = shared_path("ct_abdomen_totalsegmentator_refseg", "example_seg_fast")
    multi = np.asarray(nib.load(folder.parent / "example_seg_fast.nii.gz").dataobj)
    table = {li.name: v for v, li in load_label_table("totalsegmentator").items()}
    files = sorted(folder.glob("*.nii.gz"))
    assert len(files) == 117
    checked = 0
    for f in files:
        name = f.name[: -len(".nii.gz")]
        assert name in table, name
        mask = np.asarray(nib.load(f).dataobj) > 0
        if mask.any():
            assert set(np.unique(multi[mask]).tolist()) == {table[name]}, name
            checked += 1
    assert checked >= 30


def test_slicer_color_table(tmp_path):
    f = tmp_path / "colors.ctbl"
    f.write_text("# Color table file\n# 3 values\n0 Background 0 0 0 0\n1 liver 221 130 101 255\n"
                 "7 left_kidney 185 102 83 255\n\n12 aorta 224 97 76 255\n")
    t = load_label_table(str(f))
    assert sorted(t) == [1, 7, 12]
    assert t[7].name == "left_kidney"
    assert t[1].color == pytest.approx((221 / 255, 130 / 255, 101 / 255))
    out = write_slicer_ctbl(t, tmp_path / "copy.txt")
    t2 = load_label_table(str(out))
    assert {v: (li.name, tuple(round(c, 3) for c in li.color)) for v, li in t2.items()} == \
           {v: (li.name, tuple(round(c, 3) for c in li.color)) for v, li in t.items()}


def test_csv_tables(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("value,name,r,g,b\n1,femur,255,250,220\n2,tibia,0.5,0.5,0.5\n")
    t = load_label_table(str(f))
    assert t[1].name == "femur" and t[1].color == pytest.approx((1.0, 250 / 255, 220 / 255))
    assert t[2].color == pytest.approx((0.5, 0.5, 0.5))
    g = tmp_path / "hex.csv"
    g.write_text("label,structure,color\n3,skull,#ff0000\n")
    assert load_label_table(str(g))[3].color == pytest.approx((1.0, 0.0, 0.0))
    h = tmp_path / "plain.csv"
    h.write_text("1,a\n2,b,10,20,30\n")
    t = load_label_table(str(h))
    assert t[1].name == "a" and t[2].color == pytest.approx((10 / 255, 20 / 255, 30 / 255))


def test_json_tables_and_nnunet(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"1": "liver", "2": {"name": "spleen", "color": [0.1, 0.2, 0.3]}}))
    t = load_label_table(str(a))
    assert t[1].name == "liver" and t[2].color == pytest.approx((0.1, 0.2, 0.3))
    b = tmp_path / "b.json"
    b.write_text(json.dumps([{"value": 4, "name": "bone", "color": "#00ff00"}]))
    assert load_label_table(str(b))[4].color == pytest.approx((0, 1, 0))
    v2 = tmp_path / "dataset.json"
    v2.write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2,
                                                                       "whole": [1, 2]}, "numTraining": 3}))
    t = load_label_table(str(v2))
    assert {v: li.name for v, li in t.items()} == {1: "liver", 2: "tumour"}
    v1 = tmp_path / "dataset_v1.json"
    v1.write_text(json.dumps({"labels": {"0": "background", "1": "pancreas", "2": "cancer"}}))
    assert {v: li.name for v, li in load_label_table(str(v1)).items()} == {1: "pancreas", 2: "cancer"}


@pytest.mark.parametrize("fname,body,match", [
    ("dup.ctbl", "1 a 1 2 3 255\n1 b 1 2 3 255\n", "twice"),
    ("col.ctbl", "1 a 300 2 3 255\n", "colour"),
    ("val.csv", "value,name\nx,a\n", "not an integer"),
    ("bad.json", "{not json", "invalid JSON"),
    ("hdr.csv", "foo,bar\n1,a\n", "header"),
    ("t.xyz", "1 a\n", "format"),
    ("empty.ctbl", "# nothing\n", "no structures"),
])
def test_bad_tables_raise_config_error_naming_the_file(tmp_path, fname, body, match):
    f = tmp_path / fname
    f.write_text(body)
    with pytest.raises(ConfigError, match=match) as exc:
        load_label_table(str(f))
    assert str(f) in str(exc.value)


def test_unknown_table_name():
    with pytest.raises(ConfigError, match="not found"):
        load_label_table("totalsegmentor_v9")


def test_select_structures_by_name_and_group():
    t = load_label_table("totalsegmentator")
    bones = select_structures(t, group="bones")
    names = {li.name for li in bones.values()}
    assert {"femur_left", "vertebrae_L1", "skull", "rib_right_3", "sacrum", "sternum"} <= names
    assert not names & {"liver", "aorta", "gluteus_maximus_left", "lung_upper_lobe_left"}
    vessels = {li.name for li in select_structures(t, group="vessels").values()}
    assert {"aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left"} <= vessels
    assert "liver" in {li.name for li in select_structures(t, group="organs").values()}
    assert {li.name for li in select_structures(t, group="muscles").values()} >= {"iliopsoas_left", "autochthon_right"}
    assert len(select_structures(t, group="ribs")) == 25 and len(select_structures(t, group="spine")) == 26
    sel = select_structures(t, ["Liver", "femur_left", "3"])
    assert sorted(sel) == [3, 5, 75]
    assert set(GROUPS) >= {"bones", "organs", "vessels", "muscles"}


def test_unknown_structure_lists_close_names():
    t = load_label_table("totalsegmentator")
    with pytest.raises(ConfigError, match="livr.*liver"):
        select_structures(t, ["livr"])
    with pytest.raises(ConfigError, match="femur_left"):
        select_structures(t, ["femur_lft"])
    with pytest.raises(ConfigError, match="groups: bones"):
        select_structures(t, group="bonez")
    with pytest.raises(ConfigError, match="not in group"):
        select_structures(t, ["liver"], group="bones")
    with pytest.raises(ConfigError, match="no structure in group"):
        select_structures({1: LabelInfo(1, "liver")}, group="bones")


def test_label_info_colour_normalisation():
    assert LabelInfo(2, "x", (255, 0, 127.5)).color == pytest.approx((1.0, 0.0, 0.5))
    with pytest.raises(ConfigError):
        LabelInfo(1, "x", (1, 2))
    t = load_label_table("totalsegmentator")
    r, g, b = t[75].color   # femur: ivory, brighter in red than blue
    assert r > b and g > b and r > 0.8
