"""Shared INR engine: hash-grid encoding, poses, training loop (CPU, small)."""
import math

import pytest
import torch

from medrecon.inr import (MLP, HashGrid, NeuralField, RigidPoses, axis_angle_to_matrix, fit,
                          matrix_to_axis_angle, pick_device)


def test_hashgrid_shapes_levels_and_dense_indexing():
    g = HashGrid(n_levels=6, n_features=3, log2_hashmap_size=12, base_resolution=4, finest_resolution=64)
    assert g.out_dim == 18
    assert g.resolutions[0] == 4 and g.resolutions[-1] == 64
    # coarse level (5^3 = 125 <= 4096 entries) is dense: the table is exactly (r+1)^3 there
    assert bool(g._dense[0]) and int(g._size[0]) == 125
    assert not bool(g._dense[-1]) and int(g._size[-1]) == 4096
    y = g(torch.rand(257, 3))
    assert y.shape == (257, 18) and y.dtype == torch.float32


def test_hashgrid_interpolates_trilinearly_at_vertices():
    g = HashGrid(n_levels=1, n_features=1, log2_hashmap_size=10, base_resolution=4, finest_resolution=4)
    with torch.no_grad():
        g.table.copy_(torch.arange(g.table.shape[0], dtype=torch.float32)[:, None])
    # on the dense level, vertex (i, j, k) holds index i + 5 j + 25 k
    pts = torch.tensor([[0.25, 0.5, 0.75], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    expect = torch.tensor([1 + 5 * 2 + 25 * 3, 0, 4 + 20 + 100], dtype=torch.float32)
    assert torch.allclose(g(pts)[:, 0], expect)
    # midpoint between two vertices along x: the mean of their values
    assert torch.allclose(g(torch.tensor([[0.125, 0.0, 0.0]]))[0, 0], torch.tensor(0.5))


def test_hashgrid_gradients_reach_table_and_points():
    g = HashGrid(n_levels=4, log2_hashmap_size=10, base_resolution=4, finest_resolution=32)
    x = torch.rand(100, 3, requires_grad=True)
    g(x).pow(2).sum().backward()
    assert g.table.grad is not None and g.table.grad.abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.slow  # measured: 15 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_neural_field_fits_a_smooth_function():
    torch.manual_seed(0)
    f = NeuralField([-10, -10, -10], [10, 10, 10], out_dim=1, width=32,
                    encoding={"n_levels": 6, "log2_hashmap_size": 12, "base_resolution": 4, "finest_resolution": 32})
    target = lambda p: torch.sin(p[:, 0] / 3) * torch.cos(p[:, 1] / 4) + 0.1 * p[:, 2] / 10  # noqa: E731
    calls = []

    def step(it):
        p = torch.rand(512, 3) * 20 - 10
        return {"loss": ((f(p)[:, 0] - target(p)) ** 2).mean(), "it": it}

    log = fit(step, f.parameters(), 150, lr=2e-2, progress=lambda ev: calls.append((ev.stage, ev.done, ev.total)))
    assert log.losses[-1] < 0.05 * log.losses[0]
    assert calls[-1] == ("fit", 150, 150) and len(calls) <= 101
    assert "it" in log.extras


def test_rigid_poses_rodrigues_roundtrip_and_transform():
    v = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.2, 0.3], [0.0, 0.0, math.pi / 2]])
    R = axis_angle_to_matrix(v)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(matrix_to_axis_angle(R), v, atol=1e-5)
    # 90 degrees about z about centre (1, 0, 0): (2, 0, 0) -> (1, 1, 0) (+ translation)
    p = RigidPoses(1, axis_angle=[[0, 0, math.pi / 2]], translation=[[0, 0, 5]], center=(1, 0, 0))
    out = p.transform(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]))
    assert torch.allclose(out, torch.tensor([[1.0, 1.0, 5.0]]), atol=1e-6)
    M = p.matrices()[0]
    assert torch.allclose(M[:3, :3] @ torch.tensor([2.0, 0, 0]) + M[:3, 3], out[0], atol=1e-6)
    rot, tra = p.deviation()
    assert float(rot.detach()) == pytest.approx(0.0, abs=1e-6) and float(tra) == 0.0


def test_axis_angle_gradient_finite_at_identity_and_mlp():
    v = torch.zeros(2, 3, requires_grad=True)
    (axis_angle_to_matrix(v) * torch.randn(2, 3, 3)).sum().backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
    assert MLP(8, 2, width=16, depth=2)(torch.rand(5, 8)).shape == (5, 2)
    assert pick_device("cpu").type == "cpu"
