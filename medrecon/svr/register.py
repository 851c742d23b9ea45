"""Motion correction: stack-to-stack alignment (wide rotation search) and per-slice rigid
slice-to-volume registration (NCC, coarse to fine), robust weights, and the ``svr`` loop."""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from medrecon.svr.forward import ForwardModel, gaussian_blur2d
from medrecon.svr.srr import backproject_average, solve_srr
from medrecon.progress import ProgressEvent, ProgressFn

Progress = ProgressFn


def slice_ncc(fm: ForwardModel, x: torch.Tensor, ys, ws, poses=None) -> np.ndarray:
    """Per-slice NCC between acquired and simulated slices over weighted pixels."""
    out = []
    with torch.no_grad():
        pred = fm(x, poses)
        for p, y, w in zip(pred, ys, ws):
            m = (w > 0).to(p.dtype)
            n = m.sum((1, 2)).clamp_min(1)
            pm = (p * m).sum((1, 2)) / n
            ym = (y * m).sum((1, 2)) / n
            a = (p - pm[:, None, None]) * m
            b = (y - ym[:, None, None]) * m
            num = (a * b).sum((1, 2))
            den = torch.sqrt((a * a).sum((1, 2)) * (b * b).sum((1, 2))).clamp_min(1e-12)
            out.append((num / den).cpu().numpy())
    return np.concatenate(out)


def _weighted_ncc(p: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per-slice NCC of (n, h, w) images over weights ``m``."""
    n = m.sum((1, 2)).clamp_min(1e-6)
    pc = p - ((p * m).sum((1, 2)) / n)[:, None, None]
    yc = y - ((y * m).sum((1, 2)) / n)[:, None, None]
    num = (m * pc * yc).sum((1, 2))
    den = torch.sqrt(((m * pc * pc).sum((1, 2)) * (m * yc * yc).sum((1, 2))).clamp_min(1e-20))
    return num / den


def _targets(fm: ForwardModel, ys, ws, sigma_mm: float, stride: int):
    """In-plane blurred, subsampled targets and weights per stack for one pyramid level."""
    out = []
    for k, (y, w) in enumerate(zip(ys, ws)):
        px = float(fm.stacks[k].spacing[:2].mean())
        yb = gaussian_blur2d(y, sigma_mm / px) if sigma_mm > 0 else y
        out.append((yb[:, ::stride, ::stride].contiguous(), (w[:, ::stride, ::stride] > 0.5).to(y.dtype)))
    return out


def _compose(aa, tr, d_rot, d_tr, center, as_matrix: bool = False, pivots=None):
    """Poses after applying an extra rotation ``d_rot`` about each slice's current centre
    (``pivots``: nominal slice centres, (N, 3)) or about ``center``, then ``d_tr``: D o P.

    With ``as_matrix`` the rotation is returned as (N, 3, 3) matrices (differentiable; the
    axis-angle inverse is not differentiable at zero angle)."""
    from medrecon.inr.poses import axis_angle_to_matrix, matrix_to_axis_angle

    R = axis_angle_to_matrix(aa)
    D = axis_angle_to_matrix(d_rot)
    R2 = D @ R
    if pivots is None:
        # P: x -> R(x-c)+c+t ; D: x -> D(x-c)+c+dt  =>  D o P: x -> DR(x-c) + c + D t + dt
        t2 = (D @ tr[..., None])[..., 0] + d_tr
    else:
        # q = P(pivot); D: x -> D(x-q)+q+dt  =>  t2 = q - c - DR(pivot-c) + dt
        rel = pivots - center
        q = (R @ rel[..., None])[..., 0] + center + tr
        t2 = q - center - (R2 @ rel[..., None])[..., 0] + d_tr
    if as_matrix:
        return R2, t2
    return matrix_to_axis_angle(R2.detach()), t2


def register_slices(fm: ForwardModel, x: torch.Tensor, ys, ws, aa: torch.Tensor, tr: torch.Tensor,
                    levels=((4.0, 4, 40), (2.0, 2, 30), (0.0, 1, 20)), lr=(1.0, 0.5, 0.2),
                    progress: Progress | None = None, stage: str = "register slices",
                    group=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice rigid registration to volume ``x``: maximise each slice's NCC with its
    simulated counterpart, coarse to fine.

    ``levels``: (extra blur sigma in mm, pixel stride, iterations); ``lr`` per level in degrees
    (rotations) and mm (translations) per Adam step. ``group`` (N,) long maps slices to shared
    parameters (e.g. one per stack for stack-to-stack alignment); default one per slice.
    Returns updated ``(axis_angle, translation)``.
    """
    N = fm.n_slices
    pivots = None if group is not None else fm.slice_centers()
    G = N if group is None else int(group.max()) + 1
    gidx = torch.arange(N, device=fm.device) if group is None else group
    deg = math.pi / 180
    total = sum(l[2] for l in levels)
    done = 0
    for li, (sig, stride, n_iter) in enumerate(levels):
        tg = _targets(fm, ys, ws, sig, stride)
        with torch.no_grad():  # x: one volume, or one per stack (leave-one-stack-out)
            vbs = [fm.blurred(x[k] if isinstance(x, (list, tuple)) else x, k, sig) for k in range(len(fm.stacks))]
        d = torch.zeros(G, 6, device=fm.device, dtype=fm.dtype, requires_grad=True)
        opt = torch.optim.Adam([d], lr=lr[min(li, len(lr) - 1)])
        for it in range(n_iter):
            opt.zero_grad(set_to_none=True)
            dd = d[gidx]
            a2, t2 = _compose(aa, tr, dd[:, :3] * deg, dd[:, 3:], fm.center, True, pivots)
            loss = 0.0
            for k in range(len(fm.stacks)):
                y, m = tg[k]
                if not bool((m > 0).any()):
                    continue
                pred = fm.sample_stack(k, vbs[k], (a2, t2), stride)
                c = _weighted_ncc(pred, y, m)
                valid = m.sum((1, 2)) > 16
                loss = loss + (1 - c[valid]).sum()
            loss.backward()
            opt.step()
            for g in opt.param_groups:  # cosine decay within a level
                g["lr"] = lr[min(li, len(lr) - 1)] * 0.5 * (1 + math.cos(math.pi * (it + 1) / n_iter))
            done += 1
            if progress is not None and (it % 5 == 0 or it == n_iter - 1):
                progress(ProgressEvent(stage, done, total))
        with torch.no_grad():
            dd = d[gidx]
            aa, tr = _compose(aa, tr, dd[:, :3] * deg, dd[:, 3:], fm.center, False, pivots)
    return aa.detach(), tr.detach()


def _rotation_candidates(max_deg: float, step_deg: float) -> np.ndarray:
    vals = np.arange(-max_deg, max_deg + 1e-6, step_deg)
    return np.array(list(itertools.product(vals, vals, vals)))


def align_stacks(fm: ForwardModel, ys, ws, aa, tr, search_deg: float = 45.0, step_deg: float = 15.0,
                 progress: Progress | None = None, min_gain: float = 0.01):
    """Rigidly align every stack to stack 0 (shared pose per stack): grid search over rotations
    within +/- ``search_deg`` (NCC at 6 mm blur), then gradient refinement; a stack's pose
    changes only if its NCC improves by at least ``min_gain``."""
    if len(fm.stacks) < 2:
        return aa, tr, {}
    deg = math.pi / 180
    ref_ws = [w if k == 0 else torch.zeros_like(w) for k, w in enumerate(ws)]
    with torch.no_grad():
        xr = backproject_average(fm, ys, ref_ws, (aa, tr))
    info = {}
    cands = torch.as_tensor(_rotation_candidates(search_deg, step_deg), dtype=fm.dtype, device=fm.device)
    n_stacks = len(fm.stacks)
    for k in range(1, n_stacks):
        o, n = int(fm.offsets[k]), fm.stacks[k].n_slices
        (y, m), = _targets(fm, [ys[k]], [ws[k]], 6.0, 4)
        with torch.no_grad():
            vb = fm.blurred(xr, k, 6.0)

            def score(rot_deg: torch.Tensor) -> float:
                a2, t2 = _compose(aa[o:o + n], tr[o:o + n], (rot_deg * deg).expand(n, 3),
                                  torch.zeros(n, 3, device=fm.device, dtype=fm.dtype), fm.center)
                full_a = torch.cat([aa[:o], a2, aa[o + n:]])
                full_t = torch.cat([tr[:o], t2, tr[o + n:]])
                pred = fm.sample_stack(k, vb, (full_a, full_t), 4)
                valid = (m.sum((1, 2)) > 16) & (pred.abs().sum((1, 2)) > 0)
                c = _weighted_ncc(pred, y, m)[valid]
                return float(c.mean()) if c.numel() else -1.0

            base = score(torch.zeros(3, device=fm.device, dtype=fm.dtype))
            scores = []
            for ci, c in enumerate(cands):
                scores.append(score(c))
                if progress is not None and ci % 20 == 0:
                    progress(ProgressEvent("align stack", ci + 1, len(cands), message=str(k)))
        best = int(np.argmax(scores))
        info[f"stack{k}_ncc_identity"] = base
        info[f"stack{k}_ncc_best_grid"] = scores[best]
        if scores[best] > base + min_gain:
            rot = cands[best]
            a2, t2 = _compose(aa[o:o + n], tr[o:o + n], (rot * deg).expand(n, 3),
                              torch.zeros(n, 3, device=fm.device, dtype=fm.dtype), fm.center)
            aa = torch.cat([aa[:o], a2, aa[o + n:]])
            tr = torch.cat([tr[:o], t2, tr[o + n:]])
            info[f"stack{k}_rotation_deg"] = [float(v) for v in rot]
        else:
            info[f"stack{k}_rotation_deg"] = [0.0, 0.0, 0.0]
    # joint refinement of the per-stack poses (stack 0 fixed by weight masking of the group)
    group = torch.cat([torch.full((s.n_slices,), k, device=fm.device, dtype=torch.long)
                       for k, s in enumerate(fm.stacks)])
    ws_moving = [torch.zeros_like(w) if k == 0 else w for k, w in enumerate(ws)]
    aa, tr = register_slices(fm, xr, ys, ws_moving, aa, tr, levels=((4.0, 4, 30), (2.0, 2, 20)),
                             lr=(1.0, 0.3), progress=progress, stage="align stacks", group=group)
    return aa, tr, info


def robust_pixel_weights(res: list[torch.Tensor], ws, n_iter: int = 6) -> tuple[list[torch.Tensor], float]:
    """EM inlier probabilities of residuals: Gaussian inliers vs a uniform outlier class."""
    r = torch.cat([q[w > 0.5].flatten() for q, w in zip(res, ws)])
    if r.numel() < 10:
        return [torch.ones_like(q) for q in res], 0.0
    sub = r[:: max(1, r.numel() // 2_000_000)]
    sigma = float(1.4826 * (sub - sub.median()).abs().median()) + 1e-8
    rng = float(sub.max() - sub.min()) + 1e-8
    u = 1.0 / rng
    pi = 0.95
    for _ in range(n_iter):
        g = pi * torch.exp(-0.5 * (sub / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        p = g / (g + (1 - pi) * u)
        sigma = float(torch.sqrt((p * sub * sub).sum() / p.sum().clamp_min(1e-12))) + 1e-8
        pi = float(p.mean().clamp(0.5, 0.999))
    out = []
    for q in res:
        g = pi * torch.exp(-0.5 * (q / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        out.append(g / (g + (1 - pi) * u))
    return out, sigma


def coarse_model(fm: ForwardModel, factor: int) -> ForwardModel:
    """The same stacks on a grid ``factor`` times coarser (same origin, axes and pose centre)."""
    aff = fm.grid_affine.copy()
    aff[:3, :3] *= factor
    shape = tuple(int(math.ceil(n / factor)) for n in fm.grid_shape)
    return ForwardModel(fm.stacks, aff, shape, center=fm.center_np, device=fm.device, dtype=fm.dtype)


def upsample(x: torch.Tensor, factor: int, shape) -> torch.Tensor:
    """Trilinear upsampling of a coarse volume of :func:`coarse_model` onto the fine grid."""
    from medrecon.svr.forward import _interp_matrix

    out = x
    for axis, n in enumerate(shape):
        L = torch.as_tensor(_interp_matrix(np.arange(n) / factor, x.shape[axis]), dtype=x.dtype, device=x.device)
        out = torch.movedim(torch.tensordot(L, torch.movedim(out, axis, 0), dims=([1], [0])), 0, axis)
    return out.contiguous()


def slice_em_weights(pw, ws, ncc: np.ndarray, ncc_threshold: float = 0.5, n_iter: int = 10) -> np.ndarray:
    """Slice inlier probabilities (SVRTK-style EM on the slice "potential").

    A slice's potential is the root mean square of ``1 - p`` over its pixels (``p``: pixel
    inlier probabilities); potentials are fitted by two Gaussians (inlier slices: low potential,
    outlier slices: high) and each slice gets its posterior inlier probability. Slices whose NCC
    with the simulated slice is below ``ncc_threshold`` get 0.
    """
    pot = []
    for p, w in zip(pw, ws):
        m = (w > 0.5).to(p.dtype)
        n = m.sum((1, 2))
        v = torch.sqrt((m * (1 - p) ** 2).sum((1, 2)) / n.clamp_min(1))
        pot.append(torch.where(n > 16, v, torch.full_like(v, float("nan"))).cpu().numpy())
    pot = np.concatenate(pot).astype(float)
    ok = np.isfinite(pot)
    w = np.ones(len(pot))
    if ok.sum() >= 8:
        v = pot[ok]
        m1 = float(np.median(v))
        s1 = float(1.4826 * np.median(np.abs(v - m1))) + 1e-6
        m2, s2, pi = float(v.max()), max(s1, float(v.std())), 0.9
        for _ in range(n_iter):
            g1 = pi * np.exp(-0.5 * ((v - m1) / s1) ** 2) / s1
            g2 = (1 - pi) * np.exp(-0.5 * ((v - m2) / s2) ** 2) / s2
            r = g1 / np.maximum(g1 + g2, 1e-300)
            r = np.where(v <= m1, 1.0, r)  # lower potential than the inlier mean: inlier
            pi = float(np.clip(r.mean(), 0.5, 0.999))
            m1 = float((r * v).sum() / max(r.sum(), 1e-9))
            s1 = float(np.sqrt((r * (v - m1) ** 2).sum() / max(r.sum(), 1e-9))) + 1e-6
            if (1 - r).sum() > 1e-3:
                m2 = float(((1 - r) * v).sum() / (1 - r).sum())
                s2 = float(np.sqrt(((1 - r) * (v - m2) ** 2).sum() / (1 - r).sum())) + 1e-6
            if m2 <= m1:
                r = np.ones_like(v)
                break
        w[ok] = r
    w[np.asarray(ncc) < ncc_threshold] = 0.0
    return w


def svr_loop(fm: ForwardModel, ys, ws, x0, poses, lam, delta, sigma, n_outer: int = 6,
             progress: Progress | None = None, ncc_threshold: float = 0.5, coarse: int = 2,
             n_fine: int = 2, robust: bool = True, loo: bool = True):
    """Stack alignment, then ``n_outer`` cycles of slice-to-volume registration, robust weights
    (EM pixel and slice inlier probabilities, NCC exclusion) and robust SRR.

    The first ``n_outer - n_fine`` cycles run on a grid ``coarse`` times coarser (8x fewer
    voxels for 2), the last ``n_fine`` on the output grid: registration always compares each
    slice with the current volume (volume-to-slice), never stack to stack after the first step.
    """
    N = fm.n_slices
    if poses is None:
        aa = torch.zeros(N, 3, device=fm.device, dtype=fm.dtype)
        tr = torch.zeros(N, 3, device=fm.device, dtype=fm.dtype)
    else:
        aa, tr = poses[0].clone(), poses[1].clone()
    n_fine = max(1, min(n_fine, n_outer))
    fm_c = coarse_model(fm, coarse) if coarse > 1 and n_outer > n_fine else fm
    aa, tr, info = align_stacks(fm_c, ys, ws, aa, tr, progress=progress)
    with torch.no_grad():
        x = backproject_average(fm_c, ys, ws, (aa, tr))
    ws_r = ws
    slice_w = np.ones(N)
    history = []
    for it in range(n_outer):
        fine = it >= n_outer - n_fine
        m = fm if fine else fm_c
        if fine and x.shape != tuple(fm.grid_shape):
            x = upsample(x, coarse, fm.grid_shape)
        if it == 0:
            levels, lrs = ((4.0, 4, 40), (2.0, 2, 30), (0.0, 2, 20)), (1.0, 0.5, 0.2)
        elif not fine:
            levels, lrs = ((2.0, 2, 15), (0.0, 2, 15)), (0.4, 0.2)
        else:
            levels, lrs = ((0.0, 2, 20),), (0.15,)
        target = x
        if loo and len(fm.stacks) > 2:
            # register each stack's slices to a volume made from the *other* stacks: a slice's own
            # (mis-placed) contribution no longer holds it where it is
            target = []
            K = len(fm.stacks)
            for k in range(K):
                wk = [w if j != k else torch.zeros_like(w) for j, w in enumerate(ws_r)]
                sub = None
                if progress is not None:
                    def sub(ev, k=k, name=f"reference volumes ({it + 1}/{n_outer})"):
                        progress(ProgressEvent(name, k * ev.total + ev.done, K * ev.total))
                target.append(solve_srr(m, ys, wk, x, lam, delta, (aa, tr), n_reweight=1, cg_iter=4, progress=sub))
        aa, tr = register_slices(m, target, ys, ws, aa, tr, levels=levels, lr=lrs, progress=progress,
                                 stage=f"register slices ({it + 1}/{n_outer})")
        with torch.no_grad():
            pred = m(x, (aa, tr))
        ncc = slice_ncc(m, x, ys, ws, (aa, tr))
        if it > 0 and robust:
            pw, _ = robust_pixel_weights([p - y for p, y in zip(pred, ys)], ws)
            slice_w = slice_em_weights(pw, ws, ncc, ncc_threshold)
        else:
            pw = [torch.ones_like(y) for y in ys]
            slice_w = np.ones(N)
        sw = torch.as_tensor(slice_w, dtype=fm.dtype, device=fm.device)
        ws_r = [w * p * sw[int(fm.offsets[k]):int(fm.offsets[k + 1])][:, None, None]
                for k, (w, p) in enumerate(zip(ws, pw))]
        x = solve_srr(m, ys, ws_r, x, lam, delta, (aa, tr), n_reweight=3 if fine else 2,
                      cg_iter=8, progress=progress, stage=f"srr ({it + 1}/{n_outer})")
        history.append({"cycle": it + 1, "grid": list(m.grid_shape), "mean_ncc": float(np.mean(ncc)),
                        "slices_downweighted": int((slice_w < 0.5).sum())})
    info.update({"n_outer": n_outer, "coarse_factor": coarse if fm_c is not fm else 1,
                 "slices_excluded": int((slice_w == 0).sum()), "cycles": history})
    return x, (aa, tr), ws_r, slice_w, info
