"""The one forward model: volume -> predicted slice pixels, under per-slice rigid poses.

Every acquired pixel is a Gaussian-PSF-weighted sample of the volume (in-plane FWHM 1.2 x
pixel size, through-plane FWHM = slice thickness) around the pixel centre moved by its slice's
rigid pose ``x -> R (x - c) + c + t`` (world LPS mm, ``c`` = the model's ``center``).

Two discretisations share the same geometry:

``"fast"`` (reconstruction default)
    The volume is blurred once per stack with a separable Gaussian along the grid axes whose
    widths are the PSF covariance (nominal stack orientation) projected on the grid axes; then
    one trilinear sample per pixel at the moved pixel centre. Exact for stacks aligned with the
    grid; a close approximation for small rotations.
``"exact"`` (simulation, oblique stacks)
    Isotropic pre-blur with the in-plane width, then quadrature along the *moved* slice normal
    (Gaussian of width ``sqrt(s_z^2 - s_xy^2)``) with nodes every ``psf_step`` voxels out to
    ``truncate`` standard deviations. Exact for any orientation up to the discretisation.

The adjoint is the autograd vector-Jacobian product (:meth:`ForwardModel.adjoint`); batched
over slices, chunked to bound memory; runs on CPU or GPU.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from medrecon.inr.poses import axis_angle_to_matrix
from medrecon.svr.stacks import SliceStack


def _kernel1d(sigma: float, truncate: float, device, dtype) -> torch.Tensor:
    r = max(1, int(math.ceil(truncate * sigma)))
    x = torch.arange(-r, r + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur3d(x: torch.Tensor, sigma_vox, truncate: float = 3.0) -> torch.Tensor:
    """Separable Gaussian blur of a (D, H, W) tensor, widths in voxels per axis (zero padding).

    On CPU without autograd it runs scipy's 1D filters (about 10x faster than ``conv3d`` there;
    same kernel, same radius)."""
    if x.device.type == "cpu" and not (x.requires_grad and torch.is_grad_enabled()):
        from scipy import ndimage

        a = x.detach().numpy()
        for axis, s in enumerate(sigma_vox):
            s = float(s)
            if s >= 0.05:
                a = ndimage.gaussian_filter1d(a, s, axis=axis, truncate=truncate, mode="constant",
                                              radius=max(1, int(math.ceil(truncate * s))))
        return torch.from_numpy(np.ascontiguousarray(a)).to(x.dtype)
    y = x[None, None]
    for axis, s in enumerate(sigma_vox):
        s = float(s)
        if s < 0.05:
            continue
        k = _kernel1d(s, truncate, x.device, x.dtype)
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0, 0, 0]
        pad[axis] = k.numel() // 2
        y = F.conv3d(y, k.reshape(shape), padding=tuple(pad))
    return y[0, 0]


def gaussian_blur2d(x: torch.Tensor, sigma_pix: float, truncate: float = 3.0) -> torch.Tensor:
    """Gaussian blur of a batch of images (N, H, W), width in pixels (zero padding)."""
    if sigma_pix < 0.05:
        return x
    k = _kernel1d(sigma_pix, truncate, x.device, x.dtype)
    n = k.numel()
    y = F.conv2d(x[:, None], k.reshape(1, 1, n, 1), padding=(n // 2, 0))
    y = F.conv2d(y, k.reshape(1, 1, 1, n), padding=(0, n // 2))
    return y[:, 0]


def _axis_map(R: np.ndarray, tol: float = 1e-4):
    """Grid axis of each stack axis when the stack's axes are parallel to grid axes, else None."""
    perm = []
    for c in range(3):
        col = np.abs(R[:, c])
        g = int(np.argmax(col))
        if np.any(np.delete(col, g) > tol * col[g]):
            return None
        perm.append(g)
    return perm if sorted(perm) == [0, 1, 2] else None


def _interp_matrix(q: np.ndarray, n: int) -> np.ndarray:
    """(len(q), n) linear-interpolation weights at fractional indices ``q`` (zero outside)."""
    L = np.zeros((len(q), n), np.float64)
    i0 = np.floor(q).astype(int)
    f = q - i0
    for off, w in ((0, 1 - f), (1, f)):
        j = i0 + off
        ok = (j >= 0) & (j < n)
        L[np.nonzero(ok)[0], j[ok]] += w[ok]
    return L


def _gauss_matrix(n: int, sigma: float, truncate: float) -> np.ndarray:
    """(n, n) discrete Gaussian blur with zero padding (same kernel as :func:`gaussian_blur3d`)."""
    if sigma < 0.05:
        return np.eye(n)
    r = max(1, int(math.ceil(truncate * sigma)))
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    G = np.zeros((n, n))
    for o, w in zip(x, k):
        G += w * np.eye(n, k=o)
    return G


class ForwardModel:
    """Slice acquisition operator for a set of stacks on a fixed output grid.

    Parameters
    ----------
    stacks : list of SliceStack
    grid_affine : (4, 4)
        Output grid index -> LPS mm.
    grid_shape : 3 ints
    center : 3 floats, optional
        Centre of rotation of the slice poses (LPS mm); default the grid centre.
    device, dtype : torch device / dtype
    mode : {"fast", "exact"}
    psf_step : float
        Quadrature step in voxels ("exact").
    truncate : float
        PSF truncation in standard deviations.
    chunk_points : int
        Bound on the number of points sampled in one call.

    Notes
    -----
    Slices are numbered globally in stack order (stack 0's slices first). Poses are passed as
    ``(axis_angle (N, 3) radians, translation (N, 3) mm)`` tensors or None (identity); the
    rotations may also be given as (N, 3, 3) matrices.
    """

    def __init__(self, stacks: list[SliceStack], grid_affine, grid_shape, center=None,
                 device="cpu", dtype=torch.float32, mode: str = "fast", psf_step: float = 0.5,
                 truncate: float = 3.0, chunk_points: int = 2 ** 22):
        self.stacks = stacks
        self.device = torch.device(device)
        self.dtype = dtype
        self.mode = mode
        self.psf_step = psf_step
        self.truncate = truncate
        self.chunk_points = chunk_points
        self.separable = True
        self.grid_affine = np.asarray(grid_affine, float)
        self.grid_shape = tuple(int(s) for s in grid_shape)
        gsp = np.linalg.norm(self.grid_affine[:3, :3], axis=0)
        self.grid_spacing = gsp
        gdir = self.grid_affine[:3, :3] / gsp
        if center is None:
            center = self.grid_affine[:3, :3] @ ((np.array(self.grid_shape) - 1) / 2) + self.grid_affine[:3, 3]
        self.center_np = np.asarray(center, float)
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=self.device)  # noqa: E731
        self.center = t(self.center_np)
        ginv = np.linalg.inv(self.grid_affine)
        self._ginv_R = t(ginv[:3, :3])
        self._ginv_t = t(ginv[:3, 3])
        self._norm = t(2.0 / np.maximum(np.array(self.grid_shape) - 1, 1))
        self.offsets = np.cumsum([0] + [s.n_slices for s in stacks])
        self.n_slices = int(self.offsets[-1])
        self._stack = []
        self._sparse = None
        #: CPU: posed sampling through cached sparse matrices (see medrecon.svr.sparse_op)
        self.use_sparse = self.device.type == "cpu"
        for s in stacks:
            sig = s.psf_sigmas()
            C = s.direction @ np.diag(sig ** 2) @ s.direction.T
            Cg = gdir.T @ C @ gdir
            fast_sigma = np.sqrt(np.clip(np.diag(Cg), 0, None)) / gsp
            s_iso = float(min(sig[0], sig[1]))
            s_res = float(math.sqrt(max(sig[2] ** 2 - s_iso ** 2, 0.0)))
            nx, ny = s.image.shape[:2]
            ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
            M = ginv @ s.affine  # stack index -> grid index
            perm = _axis_map(M[:3, :3])
            self._stack.append({
                "perm": perm, "M": M,
                "fast_sigma": fast_sigma,
                "iso_sigma": s_iso / gsp,
                "res_sigma_mm": s_res,
                "A": t(s.affine),
                "ij": t(np.stack([ii, jj], -1).astype(np.float32)),  # (nx, ny, 2)
                "normal": t(s.direction[:, 2]),
                "shape": (nx, ny),
            })

    # ----------------------------------------------------------------------------------------
    def images(self, weights: bool = False) -> list[torch.Tensor]:
        """Acquired slices per stack as (ns, nx, ny) tensors (or their masks as 0/1 weights)."""
        out = []
        for s in self.stacks:
            a = s.mask if weights else s.image
            if a is None:
                a = np.ones(s.image.shape, np.float32)
            out.append(torch.as_tensor(np.ascontiguousarray(np.moveaxis(a.astype(np.float32), 2, 0)),
                                       device=self.device))
        return out

    def pixel_points(self, k: int, slices: torch.Tensor, R=None, t=None, stride: int = 1) -> torch.Tensor:
        """World (LPS mm) pixel centres of stack ``k``'s ``slices`` under poses (n, nx', ny', 3)."""
        st = self._stack[k]
        A = st["A"]
        ij = st["ij"][::stride, ::stride]
        base = A[:3, 3] + slices.to(self.dtype)[:, None] * A[:3, 2]           # (n, 3)
        p = base[:, None, None, :] + ij[None, ..., 0:1] * A[:3, 0] + ij[None, ..., 1:2] * A[:3, 1]
        if R is not None:
            p = torch.einsum("nab,nxyb->nxya", R, p - self.center) + self.center
            p = p + t[:, None, None, :]
        return p

    def slice_centers(self) -> torch.Tensor:
        """(N, 3) nominal world (LPS mm) centres of all slices."""
        out = []
        for s in self.stacks:
            nx, ny, ns = s.image.shape
            ijk = np.stack([np.full(ns, (nx - 1) / 2), np.full(ns, (ny - 1) / 2), np.arange(ns)], 1)
            out.append(ijk @ s.affine[:3, :3].T + s.affine[:3, 3])
        return torch.as_tensor(np.concatenate(out), dtype=self.dtype, device=self.device)

    def _to_grid(self, p: torch.Tensor) -> torch.Tensor:
        idx = p @ self._ginv_R.T + self._ginv_t
        g = idx * self._norm - 1.0
        return g.flip(-1)  # grid_sample wants (x=W, y=H, z=D)

    def _sample(self, vol: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        g = self._to_grid(p)
        shp = g.shape[:-1]
        out = F.grid_sample(vol[None, None], g.reshape(1, 1, 1, -1, 3), mode="bilinear",
                            padding_mode="zeros", align_corners=True)
        return out.reshape(shp)

    def _separable(self, k: int, x: torch.Tensor, sigma_vox) -> torch.Tensor:
        """Blur + trilinear sampling as three dense 1D operators (stack axes parallel to grid
        axes, identity poses): exactly the ``fast`` model, much faster on CPU."""
        B0, B1, B2 = self._sep_mats(k, sigma_vox)
        g0, g1, g2 = self._stack[k]["perm"]
        T = x.permute(g2, g0, g1)                                  # (slice, row, col) grid order
        T = torch.tensordot(B2, T, dims=([1], [0]))                # (ns, n_g0, n_g1)
        T = torch.matmul(B0, T)                                    # (ns, nx, n_g1)
        return torch.matmul(T, B1.T)                               # (ns, nx, ny)

    def _sep_mats(self, k: int, sigma_vox):
        st = self._stack[k]
        key = ("sep", tuple(np.round(sigma_vox, 6)))
        if st.get("sep_key") != key:
            mats = []
            for c in range(3):
                g = st["perm"][c]
                n_out = self.stacks[k].image.shape[c]
                q = st["M"][g, c] * np.arange(n_out) + st["M"][g, 3]
                L = _interp_matrix(q, self.grid_shape[g])
                G = _gauss_matrix(self.grid_shape[g], float(sigma_vox[g]), self.truncate)
                mats.append(torch.as_tensor(L @ G, dtype=self.dtype, device=self.device))
            st["sep"], st["sep_key"] = mats, key
        return st["sep"]

    def _separable_adjoint(self, k: int, y: torch.Tensor) -> torch.Tensor:
        st = self._stack[k]
        B0, B1, B2 = self._sep_mats(k, st["fast_sigma"])
        g0, g1, g2 = st["perm"]
        U = torch.matmul(y, B1)                                    # (ns, nx, n_g1)
        U = torch.matmul(B0.T, U)                                  # (ns, n_g0, n_g1)
        U = torch.tensordot(B2.T, U, dims=([1], [0]))              # (n_g2, n_g0, n_g1)
        inv = np.argsort([g2, g0, g1])
        return U.permute(*inv)

    def all_separable(self, poses=None) -> bool:
        """True when the fast separable operators apply to every stack (no poses)."""
        return (poses is None and self.mode == "fast" and self.separable
                and all(st["perm"] is not None for st in self._stack))

    def _poses(self, poses, k, sl):
        if poses is None:
            return None, None
        aa, tr = poses
        idx = sl + int(self.offsets[k])
        if aa.ndim == 3:  # rotation matrices given directly
            return aa[idx], tr[idx]
        return axis_angle_to_matrix(aa[idx]), tr[idx]

    def blurred(self, x: torch.Tensor, k: int, extra_sigma_mm: float = 0.0) -> torch.Tensor:
        """Stack ``k``'s pre-blurred copy of ``x`` (fast mode: full PSF; exact: in-plane part)."""
        st = self._stack[k]
        extra = extra_sigma_mm / self.grid_spacing
        base = st["fast_sigma"] if self.mode == "fast" else st["iso_sigma"]
        return gaussian_blur3d(x, np.sqrt(np.asarray(base) ** 2 + extra ** 2), self.truncate)

    def sample_stack(self, k: int, vb: torch.Tensor, poses=None, stride: int = 1,
                     slices: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted slices of stack ``k`` from its pre-blurred volume ``vb`` (see :meth:`blurred`)."""
        st = self._stack[k]
        ns = self.stacks[k].n_slices
        if self.mode == "fast":
            nodes = torch.zeros(1, device=self.device, dtype=self.dtype)
            wts = torch.ones(1, device=self.device, dtype=self.dtype)
        else:
            sr = st["res_sigma_mm"]
            step = self.psf_step * float(self.grid_spacing.min())
            m = int(math.ceil(self.truncate * sr / step)) if sr > 0 else 0
            nodes = torch.arange(-m, m + 1, device=self.device, dtype=self.dtype) * step
            wts = torch.exp(-0.5 * (nodes / max(sr, 1e-6)) ** 2)
            wts = wts / wts.sum()
        nx, ny = st["shape"]
        npix = len(range(0, nx, stride)) * len(range(0, ny, stride))
        per = max(1, self.chunk_points // max(1, npix * nodes.numel()))
        all_sl = torch.arange(ns, device=self.device) if slices is None else slices
        chunks = []
        for s0 in range(0, len(all_sl), per):
            sl = all_sl[s0:s0 + per]
            R, t = self._poses(poses, k, sl)
            p = self.pixel_points(k, sl, R, t, stride)
            if nodes.numel() == 1:
                chunks.append(self._sample(vb, p))
            else:
                nrm = st["normal"] if R is None else (R @ st["normal"])  # (3,) or (n, 3)
                nrm = nrm.expand(p.shape[0], 3)[:, None, None, None, :]
                q = p[..., None, :] + nodes[None, None, None, :, None] * nrm
                chunks.append((self._sample(vb, q) * wts).sum(-1))
        return torch.cat(chunks, 0)

    def _sparse_ok(self, poses, x=None) -> bool:
        return (self.use_sparse and poses is not None and self.mode == "fast"
                and (x is None or not (x.requires_grad and torch.is_grad_enabled())))

    def _sparse_ops(self):
        if self._sparse is None:
            from medrecon.svr.sparse_op import SparseOps

            self._sparse = SparseOps(self)
        return self._sparse

    def forward(self, x: torch.Tensor, poses=None, stride: int = 1, stacks=None,
                extra_sigma_mm: float = 0.0) -> list[torch.Tensor]:
        """Predicted slices per stack ((ns, nx', ny') tensors) from volume ``x`` (grid shape).

        ``stride`` subsamples pixels in-plane; ``extra_sigma_mm`` adds an isotropic Gaussian
        blur (coarse levels of registration); ``stacks`` restricts to some stack indices.
        """
        out = []
        ks = range(len(self.stacks)) if stacks is None else stacks
        for k in ks:
            st = self._stack[k]
            if (self.mode == "fast" and poses is None and stride == 1 and st["perm"] is not None
                    and self.separable):
                extra = extra_sigma_mm / self.grid_spacing
                out.append(self._separable(k, x, np.sqrt(st["fast_sigma"] ** 2 + extra ** 2)))
                continue
            if stride == 1 and self._sparse_ok(poses, x):
                out.append(self._sparse_ops().sample(k, self.blurred(x, k, extra_sigma_mm), poses))
                continue
            out.append(self.sample_stack(k, self.blurred(x, k, extra_sigma_mm), poses, stride))
        return out

    __call__ = forward

    def adjoint(self, ys: list[torch.Tensor], poses=None) -> torch.Tensor:
        """A^T applied to per-stack slice tensors (autograd vector-Jacobian product)."""
        if self.all_separable(poses):
            with torch.no_grad():
                return sum(self._separable_adjoint(k, y) for k, y in enumerate(ys))
        if self._sparse_ok(poses):
            sp = self._sparse_ops()
            return sum(self.blurred(sp.sample_adjoint(k, y, poses), k) for k, y in enumerate(ys))
        with torch.enable_grad():
            x = torch.zeros(self.grid_shape, device=self.device, dtype=self.dtype, requires_grad=True)
            pred = self.forward(x, poses)
            dot = sum((p * y.detach()).sum() for p, y in zip(pred, ys))
            (g,) = torch.autograd.grad(dot, x)
        return g

    def normal(self, v: torch.Tensor, weights: list[torch.Tensor], poses=None) -> torch.Tensor:
        """A^T W A v (W = per-pixel weights)."""
        if self.all_separable(poses):
            with torch.no_grad():
                pred = self.forward(v, poses)
                return sum(self._separable_adjoint(k, w * p) for k, (p, w) in enumerate(zip(pred, weights)))
        if self._sparse_ok(poses):
            sp = self._sparse_ops()
            out = None
            for k, w in enumerate(weights):
                p = sp.sample(k, self.blurred(v, k), poses)
                g = self.blurred(sp.sample_adjoint(k, w * p, poses), k)
                out = g if out is None else out + g
            return out
        with torch.enable_grad():
            v = v.detach().requires_grad_(True)
            pred = self.forward(v, poses)
            e = 0.5 * sum((w * p * p).sum() for p, w in zip(pred, weights))
            (g,) = torch.autograd.grad(e, v)
        return g
