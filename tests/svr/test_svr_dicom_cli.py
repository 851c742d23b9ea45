"""World-space geometry through DICOM stacks written by medrecon, the CLI, and input errors."""
import json

import numpy as np
import pytest

from medrecon.cli import main
from medrecon.io.dicom.write import write_dicom_series
from medrecon.io.loader import load
from medrecon.io.volumes import save_volume
from medrecon.svr import StackError, reconstruct, simulate_stacks
from medrecon.volume import Volume


def _ball_volume(center_lps, n=32, voxel=2.0, angle_deg=20.0):
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    aff = np.eye(4)
    aff[:3, :3] = R * voxel
    aff[:3, 3] = [10.0, -30.0, 40.0]
    vol = Volume(np.zeros((n, n, n), np.float32), aff, {"modality": "MR"})
    ijk = np.indices((n, n, n)).reshape(3, -1).T
    d = np.linalg.norm(vol.index_to_lps(ijk) - center_lps, axis=1).reshape(n, n, n)
    vol.array[...] = (d < 9.0).astype(np.float32) * 0.8 + (d < 20) * 0.1
    return vol


def _run(args):
    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def _corners(vol):
    n = np.array(vol.shape[:3]) - 1
    c = np.array([[n[d] if (b >> d) & 1 else 0 for d in range(3)] for b in range(8)], float)
    p = vol.index_to_lps(c)
    return p[np.lexsort(p.T[::-1])]


def _centroid(vol, thr):
    ijk = np.argwhere(vol.array > thr).astype(float)
    w = vol.array[vol.array > thr]
    return (vol.index_to_lps(ijk) * w[:, None]).sum(0) / w.sum()


def test_dicom_stacks_round_trip_lands_in_world_space(tmp_path):
    ball = _ball_volume(np.array([40.0, 5.0, 70.0]))
    truth = _centroid(ball, 0.5)
    sim = simulate_stacks(ball, 4.0, noise_sigma=0.0, seed=0)
    folders = []
    for k, s in enumerate(sim.stacks):
        folder = tmp_path / f"stack{k}"
        write_dicom_series(s, folder, modality="MR", series_number=k + 1, series_description=f"stack {k}")
        folders.append(str(folder))
        back = load(str(folder))
        assert np.allclose(_corners(back), _corners(s), atol=1e-2)  # same voxels in LPS
    out = tmp_path / "recon.nii.gz"
    code = _run(["svr", *folders, "-o", str(out), "--method", "srr", "--spacing", "2", "--device", "cpu"])
    assert code == 0
    rec = load(str(out))
    got = _centroid(rec, 0.5 * float(rec.array.max()))
    assert np.linalg.norm(got - truth) < 1.0, (got, truth)
    report = json.loads((tmp_path / "recon.json").read_text())
    assert report["method"] == "srr" and report["frame"] == "LPS mm"
    assert len(report["slices"]) == sum(s.shape[2] for s in sim.stacks)
    assert report["stacks"] == ["stack0", "stack1", "stack2"]


def test_cli_rejects_stacks_that_do_not_overlap(tmp_path, capsys):
    ball = _ball_volume(np.array([40.0, 5.0, 70.0]), n=20)
    sim = simulate_stacks(ball, 4.0, noise_sigma=0.0, n_stacks=2, seed=0)
    far = sim.stacks[1]
    aff = far.affine.copy()
    aff[:3, 3] += [500.0, 0, 0]
    p0, p1 = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    save_volume(sim.stacks[0], p0)
    save_volume(Volume(far.array, aff, far.meta), p1)
    code = _run(["svr", str(p0), str(p1), "-o", str(tmp_path / "o.nii.gz"), "--method", "average", "--device", "cpu"])
    assert code == 2
    assert "do not overlap" in capsys.readouterr().err
    assert not (tmp_path / "o.nii.gz").exists()


def test_mixed_modalities_and_unknown_method_are_errors():
    ball = _ball_volume(np.array([40.0, 5.0, 70.0]), n=20)
    sim = simulate_stacks(ball, 4.0, noise_sigma=0.0, n_stacks=2, seed=0)
    ct = Volume(sim.stacks[1].array, sim.stacks[1].affine, {"modality": "CT"})
    with pytest.raises(StackError, match="mixed modalities"):
        reconstruct([sim.stacks[0], ct], "average", device="cpu")
    with pytest.raises(Exception, match="unknown method"):
        reconstruct(sim.stacks, "magic", device="cpu")
