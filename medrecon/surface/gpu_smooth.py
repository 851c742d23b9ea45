"""Windowed-sinc smoothing (VTK's ``vtkWindowedSincPolyDataFilter``) as a Chebyshev polynomial of
the sparse umbrella Laplacian, in PyTorch: the same code on CUDA and on the CPU. Points in
index space (the GPU mesher smooths before mapping to LPS mm)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from medrecon.errors import MeshError


def sinc_coefficients(iterations: int, pass_band: float) -> np.ndarray:
    """Chebyshev coefficients ``c_0..c_N`` of VTK's windowed-sinc low-pass filter.

    Nuttall window (VTK's default since 9.1), cut-off ``theta_pb = acos(1 - k_pb / 2)`` and
    VTK's Newton search for the offset ``sigma`` that makes the filter equal 1 at the pass band
    (tolerance 1e-3, at most 500 steps), so the coefficients are VTK's to rounding.
    """
    n = int(iterations)
    if n < 1:
        raise MeshError(f"windowed-sinc smoothing needs at least 1 iteration, got {iterations}")
    k_pb = float(pass_band)
    theta = math.acos(1.0 - 0.5 * k_pb)
    i = np.arange(n + 1, dtype=np.float64)
    x = i * math.pi / (n + 1)
    w = 0.355768 + 0.487396 * np.cos(x) + 0.144232 * np.cos(2 * x) + 0.012604 * np.cos(3 * x)
    cheb_at_pb = np.cos(i * math.acos(1.0 - 0.5 * k_pb))
    cheb_at_pb[1] = 1.0 - 0.5 * k_pb
    sigma = 0.0
    c = np.zeros(n + 1)
    for _ in range(500):
        c[0] = w[0] * (theta + sigma) / math.pi
        c[1:] = 2.0 * w[1:] * np.sin(i[1:] * (theta + sigma)) / (i[1:] * math.pi)
        if n <= 1:
            break
        cp = np.zeros(n + 1)
        cp[n - 2] = 2.0 * (n - 1) * c[n - 1]
        for j in range(n - 3, -1, -1):
            cp[j] = cp[j + 2] + 2.0 * (j + 1) * c[j + 1]
        f = float(c @ cheb_at_pb)
        fp = float(cp @ cheb_at_pb)
        if abs(f - 1.0) < 1e-3:
            break
        sigma -= (f - 1.0) / fp
    return c


def _laplacian_csr(faces, n_points: int, dtype):
    """Row-normalised adjacency ``A`` (CSR, n x n): ``(A x)_p`` = mean of the neighbours of ``p``.

    Each triangle adds, for each of its corners, the two other corners (VTK's incident-edge
    list); an edge shared by two triangles therefore counts twice at both ends, and a
    non-manifold edge once per triangle (VTK's weighted non-manifold edges)."""
    import torch

    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    src = torch.cat([a, b])
    dst = torch.cat([b, a])
    order = torch.argsort(src * n_points + dst)
    src, dst = src[order], dst[order]
    deg = torch.bincount(src, minlength=n_points)
    crow = torch.zeros(n_points + 1, dtype=torch.int64, device=faces.device)
    crow[1:] = torch.cumsum(deg, 0)
    val = (1.0 / deg.clamp(min=1).to(torch.float64))[src].to(dtype)
    if dst.numel() < 2**31 - 1:  # 32-bit CSR indices: what every sparse backend (cuSPARSE, MKL) takes
        crow, dst = crow.to(torch.int32), dst.to(torch.int32)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        mat = torch.sparse_csr_tensor(crow, dst, val, (n_points, n_points), check_invariants=False)
    return mat, deg


def windowed_sinc(points, faces, pass_band: float, iterations: int, group=None, normalize: bool = True):
    """Windowed-sinc smoothing of one or many closed surfaces at once (VTK's filter).

    Parameters
    ----------
    points : (V, 3) float tensor; faces : (F, 3) int64 tensor.
    pass_band, iterations : as ``vtkWindowedSincPolyDataFilter`` (Slicer: ``10**(-4 f)``,
        ``20 + 40 f``).
    group : (V,) int64 tensor, optional
        Surface number of each vertex; each surface is normalised by its own bounding box
        (centre, diagonal), as VTK's ``NormalizeCoordinatesOn`` does for one surface.
    normalize : centre and scale each surface first (VTK's ``NormalizeCoordinates``).

    Returns
    -------
    tensor (V, 3), same dtype and device as ``points``.

    Notes
    -----
    With ``K = I - A`` (umbrella Laplacian) the filter is ``sum_i c_i T_i(I - K/2) x``; the
    three-term recurrence is VTK's: ``x1 = x0 - K x0 / 2``, ``x2 = 2 x1 - x0 - K x1``. Vertices
    on open boundaries are smoothed like interior ones (VTK would move them along the boundary
    only): the surfaces meshed here are closed.
    """
    import torch

    if points.shape[0] == 0 or iterations <= 0:
        return points
    c = sinc_coefficients(iterations, pass_band)
    dtype = points.dtype
    x = points
    if normalize:
        if group is None:
            group = torch.zeros(points.shape[0], dtype=torch.int64, device=points.device)
        ng = int(group.max()) + 1
        lo = torch.full((ng, 3), float("inf"), dtype=torch.float64, device=points.device)
        hi = torch.full((ng, 3), float("-inf"), dtype=torch.float64, device=points.device)
        p64 = points.to(torch.float64)
        idx = group[:, None].expand(-1, 3)
        lo = lo.scatter_reduce(0, idx, p64, "amin")
        hi = hi.scatter_reduce(0, idx, p64, "amax")
        center = (lo + hi) / 2
        length = torch.linalg.norm(hi - lo, dim=1).clamp(min=1e-30)
        x = ((p64 - center[group]) / length[group, None]).to(dtype)
    A, _ = _laplacian_csr(faces, points.shape[0], dtype)
    x0 = x
    x1 = 0.5 * (x0 + A @ x0)
    x3 = c[0] * x0 + c[1] * x1
    for i in range(2, len(c)):
        x2 = x1 - x0 + A @ x1
        x3 = x3 + c[i] * x2
        x0, x1 = x1, x2
    if normalize:
        x3 = (x3.to(torch.float64) * length[group, None] + center[group]).to(dtype)
    return x3
