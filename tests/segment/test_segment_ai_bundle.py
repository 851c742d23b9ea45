"""MONAI bundles built inside the tests, with networks of known weights.

The network is a 1x1x1 convolution whose channel-1 logit is ``x' - 0.6`` and channel-0 logit 0,
where ``x'`` is the bundle's intensity window ``(HU + 1000) / 2000``: the bundle is a HU > 200
threshold. Loading, preprocessing (orientation, spacing, window), inference and resampling back
onto the input grid are therefore checked against a threshold computed here with numpy.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from medrecon.errors import BundleError, MedreconError
from medrecon.segment.ai import segment_volume
from medrecon.volume import Volume
from tests.conftest import shared_path

THRESHOLD_HU = 200.0


def _conv(out_channels: int = 2, threshold_hu: float = THRESHOLD_HU) -> torch.nn.Conv3d:
    conv = torch.nn.Conv3d(1, out_channels, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[1] = 1.0
        conv.bias[1] = -(threshold_hu + 1000.0) / 2000.0
    return conv


def make_bundle(root: Path, *, pixdim=(2.0, 2.0, 2.0), roi=(32, 32, 32), mode="gaussian", weights="pt",
                metadata=True, channel_def=True, net_out=2, weight_out=2, as_yaml=False,
                threshold_hu=THRESHOLD_HU) -> Path:
    """Write a complete threshold bundle under ``root`` and return it."""
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    pred = {"type": "image", "format": "segmentation", "num_channels": 2}
    if channel_def:
        pred["channel_def"] = {"0": "background", "1": "bone"}
    meta = {"version": "0.1.0", "name": "threshold_test", "task": "HU threshold",
            "network_data_format": {"inputs": {"image": {"type": "image", "format": "hounsfield",
                                                         "num_channels": 1}},
                                    "outputs": {"pred": pred}}}
    if metadata:
        (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    cfg = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "image_key": "image",
        "device": "$torch.device('cpu')",
        "network_def": {"_target_": "torch.nn.Conv3d", "in_channels": 1, "out_channels": net_out,
                        "kernel_size": 1},
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "@image_key"},
            {"_target_": "EnsureChannelFirstd", "keys": "@image_key"},
            {"_target_": "Orientationd", "keys": "@image_key", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "@image_key", "pixdim": list(pixdim), "mode": "bilinear"},
            {"_target_": "ScaleIntensityRanged", "keys": "@image_key", "a_min": -1000, "a_max": 1000,
             "b_min": 0.0, "b_max": 1.0, "clip": True},
        ]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": list(roi), "sw_batch_size": 2,
                    "overlap": 0.25, "mode": mode},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}]},
    }
    if as_yaml:
        import yaml

        (root / "configs" / "inference.yaml").write_text(yaml.safe_dump(cfg))
    else:
        (root / "configs" / "inference.json").write_text(json.dumps(cfg))
    if weights == "pt":
        torch.save(_conv(weight_out, threshold_hu).state_dict(), root / "models" / "model.pt")
    elif weights == "ts":
        torch.jit.script(_conv(weight_out, threshold_hu)).save(str(root / "models" / "model.ts"))
    return root


def oblique_free_phantom(values: np.ndarray | None = None, seed: int = 0) -> Volume:
    """A CT-like Volume stored in an unusual axis order (S-I, then L, then A): array axis 0 runs
    inferior, axis 1 to the patient's left, axis 2 anterior; spacing 2.5, 0.8, 1.2 mm."""
    rng = np.random.default_rng(seed)
    if values is None:
        values = np.where(rng.random((30, 26, 22)) > 0.5, 700.0, -400.0) + rng.uniform(-150, 150, (30, 26, 22))
    aff = np.eye(4)
    aff[:3, 0] = [0, 0, -2.5]
    aff[:3, 1] = [0.8, 0, 0]
    aff[:3, 2] = [0, -1.2, 0]
    aff[:3, 3] = [10.0, -20.0, 30.0]
    return Volume(values, aff, {"modality": "CT"})


def test_threshold_bundle_exact_on_native_grid(tmp_path):
    """Spacing equal to the input's: orientation is undone exactly and every voxel matches."""
    vol = oblique_free_phantom()
    bundle = make_bundle(tmp_path / "b", pixdim=(0.8, 1.2, 2.5))  # RAS order: L-R, P-A, I-S axes
    lab, labels = segment_volume(vol, bundle, device="cpu")
    assert lab.shape == vol.shape
    np.testing.assert_array_equal(lab.affine, vol.affine)
    assert lab.array.dtype == np.uint8
    np.testing.assert_array_equal(lab.array, (vol.array > THRESHOLD_HU).astype(np.uint8))
    assert {k: v.name for k, v in labels.items()} == {1: "bone"}
    assert lab.meta["label_names"] == {1: "bone"}


def test_torchscript_and_yaml_bundle(tmp_path):
    vol = oblique_free_phantom(seed=3)
    bundle = make_bundle(tmp_path / "b", pixdim=(0.8, 1.2, 2.5), weights="ts", as_yaml=True, mode="constant")
    lab, labels = segment_volume(vol, bundle, device="cpu")
    np.testing.assert_array_equal(lab.array, (vol.array > THRESHOLD_HU).astype(np.uint8))
    assert labels[1].name == "bone"


def _sphere_volume(radius_mm=18.0) -> tuple[Volume, np.ndarray]:
    """Anisotropic, LPS-stored phantom: a 1000 HU ball in -1000 HU. Returns (volume, distance in mm
    from the ball's centre for every voxel)."""
    shape = (48, 40, 30)
    aff = np.eye(4)
    aff[:3, 0] = [-0.9, 0, 0]   # axis 0 runs to the patient's right
    aff[:3, 1] = [0, 1.1, 0]    # axis 1 posterior
    aff[:3, 2] = [0, 0, 1.7]    # axis 2 superior
    aff[:3, 3] = [5.0, -12.0, 40.0]
    vol = Volume(np.zeros(shape, np.float32), aff, {"modality": "CT"})
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = vol.index_to_lps(ijk)
    centre = vol.index_to_lps(np.array([[23.3, 18.6, 14.2]]))[0]
    dist = np.linalg.norm(xyz - centre, axis=1).reshape(shape)
    vol.array[:] = np.where(dist < radius_mm, 1000.0, -1000.0)
    return vol, dist


def test_resampled_bundle_puts_labels_back_in_place(tmp_path):
    """2 mm isotropic model grid: labels come back on the 0.9 x 1.1 x 1.7 mm input grid, in the
    right place (a flip or shift would break the inside/outside checks)."""
    vol, dist = _sphere_volume()
    bundle = make_bundle(tmp_path / "b", pixdim=(2.0, 2.0, 2.0), roi=(16, 16, 16))
    lab, _ = segment_volume(vol, bundle, device="cpu")
    assert lab.shape == vol.shape
    np.testing.assert_array_equal(lab.affine, vol.affine)
    a = lab.array
    # resampling error is bounded by one model voxel (2 mm) plus half a voxel of nearest-neighbour
    assert a[dist < 18.0 - 3.5].min() == 1
    assert a[dist > 18.0 + 3.5].max() == 0
    inside = a.astype(bool)
    truth = dist < 18.0
    dice = 2 * (inside & truth).sum() / (inside.sum() + truth.sum())
    assert dice > 0.95


@pytest.mark.realdata
def test_bundle_on_totalsegmentator_ct(tmp_path):
    """Real abdominal CT (3 mm, RAS NIfTI) through a 4 mm model grid with a body/air threshold
    (-300 HU). A label can only depend on input voxels within 2 voxels (half a model voxel of
    nearest-neighbour plus one input voxel of linear interpolation), so wherever the whole 5x5x5
    neighbourhood is on one side of the threshold the label is known exactly."""
    from medrecon.io.nifti import read_nifti

    thr = -300.0
    ct = read_nifti(shared_path("ct_abdomen_totalsegmentator_refseg", "example_ct.nii.gz"))
    bundle = make_bundle(tmp_path / "b", pixdim=(4.0, 4.0, 4.0), roi=(32, 32, 32), threshold_hu=thr)
    lab, labels = segment_volume(ct, bundle, device="cpu")
    assert lab.shape == ct.shape
    np.testing.assert_array_equal(lab.affine, ct.affine)
    hu = ct.array.astype(np.float32)
    sure_in = ndimage.minimum_filter(hu, size=5) > thr
    sure_out = ndimage.maximum_filter(hu, size=5) <= thr
    assert sure_in.sum() > 100000 and sure_out.sum() > 100000
    assert lab.array[sure_in].min() == 1
    assert lab.array[sure_out].max() == 0
    body = hu > thr
    got = lab.array.astype(bool)
    assert 2 * (got & body).sum() / (got.sum() + body.sum()) > 0.97


@pytest.mark.slow  # measured: 6 s CPU alone (issue 22: the fast tier stays under 3 min)
@pytest.mark.realdata
def test_bundle_on_dicom_ct_native_grid(tmp_path):
    """The JPEG 2000 DICOM series: a bundle on the series' own spacing gives the exact threshold."""
    from medrecon.io.loader import load

    ct = load(str(shared_path("ct_abdomen_totalsegmentator_refseg", "example_ct_dicom")))
    sp = ct.spacing
    # RAS-ordered pixdim: find which array axis runs along each of x, y, z
    order = [int(np.argmax(np.abs(ct.direction[r]))) for r in range(3)]
    bundle = make_bundle(tmp_path / "b", pixdim=tuple(float(sp[a]) for a in order), roi=(64, 64, 16),
                         mode="constant")
    lab, _ = segment_volume(ct, bundle, device="cpu")
    assert lab.shape == ct.shape
    np.testing.assert_array_equal(lab.affine, ct.affine)
    np.testing.assert_array_equal(lab.array, (ct.array > THRESHOLD_HU).astype(np.uint8))


# --- errors ---------------------------------------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(BundleError, match="bundle folder not found"):
        segment_volume(oblique_free_phantom(), tmp_path / "nope", device="cpu")


def test_missing_weights(tmp_path):
    bundle = make_bundle(tmp_path / "b", weights=None)
    with pytest.raises(BundleError, match=r"no weights: models/model\.pt or models/model\.ts missing") as ei:
        segment_volume(oblique_free_phantom(), bundle, device="cpu")
    assert str(bundle.resolve()) in str(ei.value) or str(bundle) in str(ei.value)
    assert "\n" not in str(ei.value)


def test_mismatched_weights(tmp_path):
    bundle = make_bundle(tmp_path / "b", weight_out=3)  # state dict for 3 channels, network has 2
    with pytest.raises(BundleError, match=r"do not fit.*shape mismatch.*weight \(3, 1, 1, 1, 1\) vs \(2, 1, 1, 1, 1\)"):
        segment_volume(oblique_free_phantom(), bundle, device="cpu")


def test_missing_metadata(tmp_path):
    bundle = make_bundle(tmp_path / "b", metadata=False)
    with pytest.raises(BundleError, match=r"configs/metadata\.json"):
        segment_volume(oblique_free_phantom(), bundle, device="cpu")


def test_metadata_without_channel_def(tmp_path):
    bundle = make_bundle(tmp_path / "b", channel_def=False)
    with pytest.raises(BundleError, match="channel_def"):
        segment_volume(oblique_free_phantom(), bundle, device="cpu")


def test_missing_inference_config(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    (bundle / "configs" / "inference.json").unlink()
    with pytest.raises(BundleError, match=r"configs/inference\.json"):
        segment_volume(oblique_free_phantom(), bundle, device="cpu")


def test_unavailable_device_and_4d_input(tmp_path):
    from medrecon.errors import SegmentationError

    bundle = make_bundle(tmp_path / "b")
    if not torch.cuda.is_available():
        with pytest.raises(SegmentationError, match="CUDA is not available"):
            segment_volume(oblique_free_phantom(), bundle, device="cuda:0")
    v4 = Volume(np.zeros((4, 4, 4, 2)), np.eye(4))
    with pytest.raises(SegmentationError, match="3D volume"):
        segment_volume(v4, bundle, device="cpu")


# --- CLI ------------------------------------------------------------------------------------
def test_cli_segment_writes_labelmap_and_table(tmp_path, capsys):
    from medrecon.cli import main
    from medrecon.io.nifti import read_nifti, write_nifti
    from medrecon.io.label_tables import load_label_table

    vol = oblique_free_phantom(seed=5)
    src = tmp_path / "ct.nii.gz"
    write_nifti(vol, src)
    bundle = make_bundle(tmp_path / "b", pixdim=(0.8, 1.2, 2.5))
    out = tmp_path / "out" / "seg.nii.gz"
    try:
        main(["segment", str(src), "-o", str(out), "--bundle", str(bundle), "--device", "cpu"])
    except SystemExit as exc:  # success may return or exit 0
        assert exc.code in (0, None)
    assert "wrote" in capsys.readouterr().out
    seg = read_nifti(out)
    np.testing.assert_allclose(seg.affine, vol.affine, atol=1e-5)
    np.testing.assert_array_equal(seg.array, (vol.array > THRESHOLD_HU).astype(np.uint8))
    table = load_label_table(str(tmp_path / "out" / "seg.ctbl"))
    assert {k: v.name for k, v in table.items()} == {1: "bone"}
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # no temp files


def test_cli_segment_bad_bundle_exit_code_2(tmp_path, capsys):
    from medrecon.cli import main
    from medrecon.io.nifti import write_nifti

    src = tmp_path / "ct.nii.gz"
    write_nifti(oblique_free_phantom(), src)
    bundle = make_bundle(tmp_path / "b", weights=None)
    with pytest.raises(SystemExit) as ei:
        main(["segment", str(src), "-o", str(tmp_path / "seg.nii.gz"), "--bundle", str(bundle), "--device", "cpu"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "model.pt" in err and "Traceback" not in err
    assert not (tmp_path / "seg.nii.gz").exists()


def test_bundle_error_is_medrecon_error():
    assert issubclass(BundleError, MedreconError)


def test_cli_mesh_with_bundle_names_the_mesh(tmp_path):
    """`medrecon mesh --bundle`: the bundle's channel_def name becomes the mesh name, and the mesh
    sits where the thresholded voxels are (LPS mm)."""
    import trimesh

    from medrecon.cli import main
    from medrecon.io.nifti import write_nifti

    vol, dist = _sphere_volume()
    src = tmp_path / "ct.nii.gz"
    write_nifti(vol, src)
    bundle = make_bundle(tmp_path / "b", pixdim=(2.0, 2.0, 2.0), roi=(16, 16, 16))
    out = tmp_path / "out"
    try:
        main(["mesh", str(src), "-o", str(out), "--bundle", str(bundle), "--device", "cpu",
              "--structures", "bone", "--no-preview"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    stl = out / "bone.stl"
    assert stl.exists()
    mesh = trimesh.load(str(stl))
    centre = vol.index_to_lps(np.array([[23.3, 18.6, 14.2]]))[0]
    assert np.allclose(mesh.bounds.mean(axis=0), centre, atol=2.0)
    assert np.allclose(mesh.extents, 36.0, atol=4.0)
