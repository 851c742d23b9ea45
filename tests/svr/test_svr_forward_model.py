"""The shared slice-acquisition operator: adjointness and its two discretisations."""
import numpy as np
import pytest
import torch

from medrecon.svr.forward import ForwardModel
from medrecon.svr.stacks import SliceStack, make_grid


def _stacks(oblique=False):
    rng = np.random.default_rng(0)
    out = []
    for k in range(3):
        A = np.eye(4)
        perm = [(0, 1, 2), (1, 2, 0), (2, 0, 1)][k]
        A[:3, :3] = np.eye(3)[:, perm] @ np.diag([1.0, 1.0, 3.0])
        if oblique:
            c, s = np.cos(0.3), np.sin(0.3)
            A[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ A[:3, :3]
        A[:3, 3] = [-20, -20, -20.3 + k]
        out.append(SliceStack(rng.random((40, 40, 14)).astype(np.float32), A, 3.0))
    return out


@pytest.mark.parametrize("mode,with_poses,oblique", [("fast", False, False), ("fast", True, False),
                                                     ("exact", True, False), ("fast", False, True)])
def test_forward_adjoint_dot_product(mode, with_poses, oblique):
    stacks = _stacks(oblique)
    aff, shape = make_grid(stacks, 1.0)
    fm = ForwardModel(stacks, aff, shape, mode=mode)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(shape, generator=g)
    ys = [torch.rand(14, 40, 40, generator=g) for _ in stacks]
    poses = None
    if with_poses:
        poses = (torch.randn(fm.n_slices, 3, generator=g) * 0.05, torch.randn(fm.n_slices, 3, generator=g))
    Ax = fm(x, poses)
    ATy = fm.adjoint(ys, poses)
    lhs = sum(float((a.double() * y.double()).sum()) for a, y in zip(Ax, ys))
    rhs = float((x.double() * ATy.double()).sum())
    assert abs(lhs - rhs) / abs(lhs) < 1e-5
    assert lhs > 0


def test_separable_path_equals_generic_sampling():
    stacks = _stacks()
    aff, shape = make_grid(stacks, 1.0)
    fm = ForwardModel(stacks, aff, shape)
    x = torch.rand(shape)
    ys = [torch.rand(14, 40, 40) for _ in stacks]
    a, at = fm(x), fm.adjoint(ys)
    fm.separable = False
    b, bt = fm(x), fm.adjoint(ys)
    for p, q in zip(a, b):
        assert torch.allclose(p, q, atol=1e-5)
    assert torch.allclose(at, bt, atol=1e-4)


def test_constant_volume_gives_constant_slices_and_psf_widths():
    stacks = _stacks()
    aff, shape = make_grid(stacks, 1.0)
    for mode in ("fast", "exact"):
        fm = ForwardModel(stacks, aff, shape, mode=mode)
        pred = fm(torch.ones(shape))
        # pixels far from the border of the grid see a PSF that sums to one
        for p in pred:
            assert torch.allclose(p[4:-4, 8:-8, 8:-8], torch.ones_like(p[4:-4, 8:-8, 8:-8]), atol=2e-3)
    s = stacks[0].psf_sigmas()
    assert s[0] == pytest.approx(1.2 / 2.35482, rel=1e-4) and s[2] == pytest.approx(3.0 / 2.35482, rel=1e-4)


def test_translation_pose_moves_the_sampled_point():
    stacks = _stacks()
    aff, shape = make_grid(stacks, 1.0)
    fm = ForwardModel(stacks, aff, shape)
    x = torch.zeros(shape)
    x[:, :, :] = torch.arange(shape[0], dtype=torch.float32)[:, None, None]  # value = grid index along axis 0
    zero = torch.zeros(fm.n_slices, 3)
    t = torch.zeros(fm.n_slices, 3)
    t[:, 0] = 2.0  # 2 mm along the grid's axis 0 (LPS x here)
    a = fm(x, (zero, zero), stacks=[2])[0]
    b = fm(x, (zero, t), stacks=[2])[0]
    d = (b - a)[2:12, 10:30, 10:30]  # away from the grid border (zero padding)
    assert torch.allclose(d, torch.full_like(d, 2.0), atol=1e-3)
