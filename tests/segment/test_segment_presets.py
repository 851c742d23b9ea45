"""Presets (YAML, validation, thresholds, automatic MR masks) and physical-unit clean-up."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, shared_path
from medrecon.errors import ConfigError, SegmentationError
from medrecon.segment import cleanup as C
from medrecon.segment.presets import (PRESET_DIR, apply_preset, body_mask, list_presets, load_preset,
                                      multi_otsu_thresholds, otsu_threshold, parse_threshold, threshold_preset)
from medrecon.volume import Volume

EXPECTED = {"ct-bone", "ct-bone-compact", "ct-bone-spongy", "ct-teeth", "ct-skin", "ct-soft-tissue",
            "ct-lung", "ct-airway", "mr-brain", "mr-head"}


def test_builtin_presets_load_and_ship_with_the_package():
    names = set(list_presets())
    assert EXPECTED <= names
    assert PRESET_DIR.is_relative_to(ROOT / "medrecon")
    assert "configs/presets/*.yaml" in (ROOT / "pyproject.toml").read_text()
    for n in names:
        p = load_preset(n)
        assert p.name == n and p.structure and p.description


@pytest.mark.parametrize("name,low,high", [
    ("ct-bone", 226, 3071), ("ct-bone-compact", 662, 1988), ("ct-bone-spongy", 148, 661),
    ("ct-teeth", 1553, 2850), ("ct-soft-tissue", -700, 225),   # InVesalius adult presets
])
def test_ct_windows_match_invesalius(name, low, high):
    p = load_preset(name)
    assert (p.low, p.high, p.modality, p.method) == (low, high, "CT", "threshold")


def test_mr_presets_are_automatic():
    assert load_preset("mr-brain").method == "brain"
    assert load_preset("mr-head").method == "head"


@pytest.mark.parametrize("body,field", [
    ("name: x\nstructure: s\nlow: 500\nhigh: 100\n", "low"),
    ("name: x\nstructure: s\nlow: 1\nhigh: 2\ncolour: [1, 0, 0]\n", "colour"),
    ("name: x\nlow: 1\nhigh: 2\n", "structure"),
    ("name: x\nstructure: s\nmethod: magic\n", "method"),
    ("name: x\nstructure: s\nlow: 1\ncleanup:\n  closing_mm: -3\n", "closing_mm"),
    ("name: x\nstructure: s\n", "threshold"),
])
def test_bad_preset_yaml_names_file_and_field(tmp_path, body, field):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(ConfigError) as exc:
        load_preset(str(f))
    msg = str(exc.value)
    assert str(f) in msg and field in msg and "\n" not in msg


def test_broken_yaml_syntax_and_missing_file(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("name: [unclosed\n  low: 1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_preset(str(f))
    with pytest.raises(ConfigError, match="not found"):
        load_preset(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="did you mean ct-bone"):
        load_preset("ct-bon")


def test_parse_threshold():
    assert parse_threshold("226:3071") == (226.0, 3071.0)
    assert parse_threshold("-1000:-400") == (-1000.0, -400.0)
    assert parse_threshold("300:") == (300.0, None)
    assert parse_threshold(":-500") == (None, -500.0)
    assert parse_threshold("1.5e2..2e3") == (150.0, 2000.0)
    for bad in ("", ":", "abc", "500:100", "1:2:3", "226-3071"):
        with pytest.raises(ConfigError):
            parse_threshold(bad)


def _blocks():
    """A CT-like volume: air, a 40 HU body, a 1000 HU bone block and a 2000 HU tooth block."""
    arr = np.full((40, 30, 20), -1000.0, np.float32)
    arr[5:35, 5:25, 2:18] = 40
    arr[10:20, 10:20, 5:15] = 1000
    arr[25:30, 10:15, 5:10] = 2000
    return Volume(arr, np.diag([0.8, 0.8, 2.0, 1.0]), {"modality": "CT"})


def test_threshold_and_custom_window_select_the_right_voxels():
    vol = _blocks()
    lab, table = apply_preset(vol, "ct-bone")
    expect = vol.array >= 226
    np.testing.assert_array_equal(lab.array > 0, expect)
    assert table[1].name == "bone" and lab.array.dtype == np.uint8
    np.testing.assert_array_equal(lab.affine, vol.affine)
    lab, _ = apply_preset(vol, "ct-teeth")
    assert int(lab.array.sum()) == 5 * 5 * 5
    lab, table = apply_preset(vol, threshold_preset("1500:"))
    assert int(lab.array.sum()) == 125 and table[1].name == "threshold"


def test_preset_cleanup_in_mm3_and_overrides():
    vol = _blocks()
    vol.array[0, 0, 0] = 1000  # one stray voxel (1.28 mm3)
    lab, _ = apply_preset(vol, "ct-bone")  # min_component_mm3 = 100
    assert lab.array[0, 0, 0] == 0
    lab, _ = apply_preset(vol, "ct-bone", min_component_mm3=0)
    assert lab.array[0, 0, 0] == 1
    lab, _ = apply_preset(vol, "ct-bone", largest=True)
    assert int(lab.array.sum()) == 10 * 10 * 10


def test_modality_mismatch_and_empty_result():
    vol = _blocks()
    with pytest.raises(ConfigError, match="for MR"):
        apply_preset(vol, "mr-brain")
    empty = Volume(np.zeros((5, 5, 5), np.float32), np.eye(4), {"modality": "CT"})
    with pytest.raises(SegmentationError, match="no voxels"):
        apply_preset(empty, "ct-bone")


def test_lung_and_airway_stay_inside_the_body():
    from medrecon.phantoms import head_ct_phantom

    h = head_ct_phantom(spacing=(2.0, 2.0, 2.5), noise=0)
    body = body_mask(h.volume)
    lab, _ = apply_preset(h.volume, "ct-airway")
    air = lab.array > 0
    assert air.any() and not (air & ~body).any()
    assert not air[0, 0, 0]  # the air around the head is not airway
    lab, _ = apply_preset(h.volume, "ct-skin")
    assert lab.array.sum() == pytest.approx(body.sum(), rel=0.02)


def test_otsu_thresholds_separate_modes():
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(100, 10, 5000), rng.normal(400, 20, 3000)])
    assert 150 < otsu_threshold(two) < 330
    three = np.concatenate([rng.normal(0, 5, 4000), rng.normal(100, 5, 4000), rng.normal(200, 5, 4000)])
    t1, t2 = multi_otsu_thresholds(three)
    assert 20 < t1 < 80 and 120 < t2 < 180
    with pytest.raises(SegmentationError):
        otsu_threshold(np.full(100, 3.0))


@pytest.mark.slow  # measured: 19 s CPU alone (issue 22: the fast tier stays under 3 min)
@pytest.mark.realdata
def test_mr_brain_and_head_on_a_real_t1():
    from medrecon.io.nifti import read_nifti

    vol = read_nifti(shared_path("mr_philips_classic_vs_enhanced_mixed_folder", "ref_dcm2niix",
                                 "1301_WIP_ADNI_Sag3D_MPRAGE_cl_displayscaling.nii.gz"))
    vol.meta["modality"] = "MR"
    vox_cm3 = float(np.prod(vol.spacing)) / 1000
    head, _ = apply_preset(vol, "mr-head")
    brain, _ = apply_preset(vol, "mr-brain")
    h, b = head.array > 0, brain.array > 0
    assert 2500 < h.sum() * vox_cm3 < 7000       # a head with neck, in cm3
    assert 800 < b.sum() * vox_cm3 < 1700        # an adult brain, in cm3
    assert not (b & ~h).any()                    # the brain lies inside the head
    # the brain is one piece, its centre well inside the head's bounding box
    lo, hi = np.argwhere(h).min(0), np.argwhere(h).max(0)
    c = np.argwhere(b).mean(0)
    assert np.all(c > lo + 0.15 * (hi - lo)) and np.all(c < hi - 0.15 * (hi - lo))


# ------------------------------------------------------------------------------------ clean-up
AFF = np.diag([0.5, 1.0, 2.0, 1.0])  # 1 mm3 voxels, anisotropic


def test_voxel_volume_and_small_components():
    assert C.voxel_volume_mm3(AFF) == pytest.approx(1.0)
    sheared = AFF.copy()
    sheared[1, 2] = 0.7
    assert C.voxel_volume_mm3(sheared) == pytest.approx(1.0)
    m = np.zeros((30, 30, 30), bool)
    m[2:6, 2:6, 2:6] = True      # 64 mm3
    m[20:22, 20:22, 20:22] = True  # 8 mm3
    out = C.remove_small_components(m, AFF, 10)
    assert out.sum() == 64 and not out[20, 20, 20]
    assert C.remove_small_components(m, AFF * np.array([2, 2, 2, 1])[:, None], 10).sum() == 72  # 8 mm3 voxels
    assert C.keep_largest(m).sum() == 64


def test_fill_and_closing_in_mm():
    m = np.zeros((60, 40, 20), bool)
    m[20:40, 10:30, 5:15] = True
    hollow = m.copy()
    hollow[25:35, 15:25, 8:12] = False
    assert C.fill_holes(hollow).sum() == m.sum()
    gap = m.copy()
    gap[29:31] = False                     # a 1 mm wide cut (two 0.5 mm voxels)
    assert C.closing_mm(gap, AFF, 1.0)[29:31, 12:28, 6:14].all()
    assert not C.closing_mm(gap, AFF, 0.4)[29:31].any()
    d = C.dilate_mm(m, AFF, 2.0)
    assert d[16:44, 10:30, 5:15].all() and not d[15, 20, 10] and d[20, 8, 10] and not d[20, 7, 10]
    e = C.erode_mm(m, AFF, 2.0)
    assert e[25, 20, 10] and not e[22, 20, 10] and e[24, 20, 10]


def test_clean_labelmap_per_label_never_overwrites_neighbours():
    lab = np.zeros((30, 30, 30), np.uint8)
    lab[2:12, 2:12, 2:12] = 1
    lab[5:8, 5:8, 5:8] = 2      # enclosed in label 1
    lab[20, 20, 20] = 1          # stray voxel of label 1
    lab[15:25, 2:10, 2:10] = 3
    out = C.clean_labelmap(lab, AFF, min_component_mm3=5, fill=True)
    assert out[20, 20, 20] == 0
    assert (out == 2).sum() == 27       # the enclosed label survives the fill of label 1
    assert (out == 3).sum() == (lab == 3).sum()


def _critical_configurations(x: np.ndarray) -> int:
    """Edge-only and corner-only contacts (fore- or background), counted independently."""
    x = np.pad(x, 1)
    bad = 0
    for ax in range(3):
        y = np.moveaxis(x, ax, 0)
        a, b, c, d = y[:, :-1, :-1], y[:, 1:, 1:], y[:, 1:, :-1], y[:, :-1, 1:]
        bad += int(((a & b & ~c & ~d) | (c & d & ~a & ~b)).sum())
    cube = [x[i:x.shape[0] - 1 + i, j:x.shape[1] - 1 + j, k:x.shape[2] - 1 + k]
            for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    cnt = sum(c.astype(int) for c in cube)
    for n in range(4):
        bad += int(((cube[n] & cube[7 - n] & (cnt == 2)) | (~cube[n] & ~cube[7 - n] & (cnt == 6))).sum())
    return bad


def test_well_composed_removes_pinches_by_adding_voxels():
    m = np.zeros((6, 6, 6), bool)
    m[1, 1, 1] = m[2, 2, 2] = True            # corner contact
    m[4, 1, 1] = m[3, 2, 1] = True            # edge contact
    assert _critical_configurations(m) > 0
    w = C.well_composed(m)
    assert _critical_configurations(w) == 0 and not (m & ~w).any() and w.sum() <= m.sum() + 3
    rng = np.random.default_rng(0)
    noisy = rng.random((30, 30, 30)) > 0.6
    w = C.well_composed(noisy)
    assert _critical_configurations(w) == 0 and not (noisy & ~w).any()


def test_presets_give_pinch_free_masks():
    from medrecon.phantoms import head_ct_phantom

    h = head_ct_phantom(spacing=(1.5, 1.5, 1.5), noise=60)   # noisy: speckle at the bone edges
    lab, _ = apply_preset(h.volume, "ct-bone", min_component_mm3=0)
    assert _critical_configurations(lab.array > 0) == 0
    raw = (h.volume.array >= 226) & (h.volume.array <= 3071)
    assert _critical_configurations(raw) > 0                   # the threshold alone has some
    assert (lab.array > 0).sum() - raw.sum() < 0.01 * raw.sum()
