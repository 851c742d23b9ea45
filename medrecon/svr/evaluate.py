"""Image-quality metrics inside a mask: PSNR, SSIM (3D Gaussian window) and NCC."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from medrecon.volume import Volume


def resample_to(volume: Volume, reference: Volume, order: int = 1) -> np.ndarray:
    """``volume`` sampled on ``reference``'s grid (world space, LPS mm); zero outside."""
    if volume.shape[:3] == reference.shape[:3] and np.allclose(volume.affine, reference.affine, atol=1e-4):
        return np.asarray(volume.array, np.float32)
    M = np.linalg.inv(volume.affine) @ reference.affine
    return ndimage.affine_transform(np.asarray(volume.array, np.float32), M[:3, :3], M[:3, 3],
                                    output_shape=reference.shape[:3], order=order, mode="constant",
                                    cval=0.0).astype(np.float32)


def psnr(x: np.ndarray, ref: np.ndarray, mask=None, data_range: float = 1.0) -> float:
    """10 log10(data_range^2 / MSE) over ``mask`` voxels (all voxels if None)."""
    m = np.ones(ref.shape, bool) if mask is None else np.asarray(mask, bool)
    mse = float(np.mean((np.asarray(x, np.float64)[m] - np.asarray(ref, np.float64)[m]) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range ** 2 / mse)


def ssim(x: np.ndarray, ref: np.ndarray, mask=None, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Mean SSIM over ``mask`` voxels with a 3D Gaussian window (sigma in voxels, K1 .01, K2 .03)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(ref, np.float64)
    g = lambda a: ndimage.gaussian_filter(a, sigma, truncate=3.5)  # noqa: E731
    mx, my = g(x), g(y)
    sxx = g(x * x) - mx * mx
    syy = g(y * y) - my * my
    sxy = g(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    m = np.ones(y.shape, bool) if mask is None else np.asarray(mask, bool)
    return float(s[m].mean())


def ncc(x: np.ndarray, ref: np.ndarray, mask=None) -> float:
    """Normalised cross-correlation over ``mask`` voxels."""
    m = np.ones(np.shape(ref), bool) if mask is None else np.asarray(mask, bool)
    a = np.asarray(x, np.float64)[m]
    b = np.asarray(ref, np.float64)[m]
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def evaluate(recon, reference, mask=None, data_range: float = 1.0) -> dict:
    """PSNR (dB), SSIM and NCC of ``recon`` against ``reference`` inside ``mask``.

    Parameters
    ----------
    recon, reference : Volume or ndarray
        Volumes are compared in world space: ``recon`` is resampled (trilinear) onto
        ``reference``'s grid when the grids differ. Arrays must have the same shape.
    mask : Volume or ndarray, optional
        On the reference grid; all voxels if None.
    data_range : float
        Peak value for PSNR/SSIM (1 for intensities scaled to [0, 1]).
    """
    if isinstance(reference, Volume):
        x = resample_to(recon, reference) if isinstance(recon, Volume) else np.asarray(recon)
        ref = np.asarray(reference.array, np.float32)
    else:
        x, ref = np.asarray(recon.array if isinstance(recon, Volume) else recon), np.asarray(reference)
    m = None if mask is None else np.asarray(mask.array if isinstance(mask, Volume) else mask) > 0
    return {"psnr": psnr(x, ref, m, data_range), "ssim": ssim(x, ref, m, data_range), "ncc": ncc(x, ref, m)}
