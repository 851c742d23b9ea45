"""Small procedural phantom shared by the svr tests (band-limited noise through tanh in a ball)."""
import numpy as np
from scipy import ndimage

from medrecon.volume import Volume


def phantom(n=40, voxel=2.0, smooth=3.0, seed=0, affine=None):
    rng = np.random.default_rng(seed)
    z = ndimage.gaussian_filter(rng.normal(size=(n, n, n)), smooth)
    z = np.tanh(z / z.std() * 2) * 0.4 + 0.5
    ii = np.indices((n, n, n)) - n / 2 + 0.5
    m = np.sqrt((ii ** 2).sum(0)) < n / 2 - 4
    aff = np.diag([voxel, voxel, voxel, 1.0]) if affine is None else affine
    return Volume(np.where(m, z, 0).astype(np.float32), aff, {"modality": "MR"}), m
