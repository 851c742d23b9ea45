"""Load DICOM with exact geometry, look at the series found, and convert to NIfTI/NRRD.

    .venv/bin/python examples/load_and_convert.py                 # uses ../shared/data if present,
                                                                  # else a small synthetic series
    .venv/bin/python examples/load_and_convert.py PATH [-o OUTDIR]

Shows: every series with its warnings (tilt, gaps, 4D, localizers), loading one volume (the
affine maps array index to LPS mm), writing NIfTI (RAS affine) and NRRD (LPS), and converting to
SimpleITK / VTK with the same geometry.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import medrecon  # noqa: E402
from medrecon.io.convert import to_sitk, to_vtk_image  # noqa: E402
from medrecon.io.loader import describe_series  # noqa: E402
from medrecon.io.volumes import save_volume  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct_head_ge_gantry_tilt_variable_spacing" / "dicom"


def synthetic_series(folder: Path) -> Path:
    """A 16-slice oblique CT phantom written as DICOM (used when no real data are around)."""
    from medrecon.io.dicom.write import write_dicom_series
    from medrecon.volume import Volume

    z, y, x = np.mgrid[-1:1:32j, -1:1:48j, -1:1:16j]
    arr = np.where(x ** 2 + y ** 2 + z ** 2 < 0.6, 400, -1000).astype(np.int16).transpose(2, 1, 0)
    th = np.deg2rad(10)
    A = np.eye(4)
    A[:3, :3] = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]]) @ np.diag([0.8, 0.8, 2.0])
    write_dicom_series(Volume(arr, A, {"modality": "CT"}), folder, modality="CT")
    return folder


def write_grey_png(img: np.ndarray, path: Path) -> Path:
    """Write a 2D uint8 array as an 8-bit greyscale PNG (zlib only, no imaging library)."""
    import struct
    import zlib

    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].astype(np.uint8).tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def tilt_picture(src: Path, out_png: Path) -> Path:
    """Sagittal view of a tilted CT: slices stacked naively (left) vs medrecon's world-space
    geometry after tilt correction and equal spacing (right). Both 1 mm per pixel, bone window."""
    from scipy import ndimage

    kept = medrecon.load(src, correct_tilt=False, resample_gaps=False)
    fixed = medrecon.load(src)
    window = lambda a: np.clip((a + 200.0) / 1400.0 * 255.0, 0, 255).astype(np.uint8)  # noqa: E731
    # naive: slices as if orthogonal and evenly spaced, mid column, resized to ~1 mm pixels
    i = kept.shape[0] // 2
    naive = kept.array[i, :, :].astype(np.float32)  # (rows, slices)
    zoom = (kept.spacing[1], float(np.linalg.norm(kept.affine[:3, 2])))
    naive = ndimage.zoom(naive, zoom, order=1).T[::-1]  # superior at the top
    # medrecon: sample the corrected volume on a world-space sagittal plane (x = centre), 1 mm grid
    c = fixed.index_to_lps([[fixed.shape[0] / 2, fixed.shape[1] / 2, fixed.shape[2] / 2]])[0]
    ys = np.arange(c[1] - 130, c[1] + 130)
    zs = np.arange(c[2] + 90, c[2] - 90, -1.0)
    Y, Z = np.meshgrid(ys, zs)
    pts = np.stack([np.full(Y.size, c[0]), Y.ravel(), Z.ravel()], axis=1)
    ijk = fixed.lps_to_index(pts).T
    world = ndimage.map_coordinates(fixed.array.astype(np.float32), ijk, order=1, cval=-1000).reshape(Y.shape)
    h = max(naive.shape[0], world.shape[0])
    pad = lambda a: np.pad(a, ((0, h - a.shape[0]), (0, 0)), constant_values=-1000)  # noqa: E731
    panel = np.concatenate([pad(naive), np.full((h, 8), 1200.0), pad(world)], axis=1)
    return write_grey_png(window(panel), out_png)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=None)
    ap.add_argument("-o", "--outdir", default=None)
    ap.add_argument("--tilt-png", default=None, help="also write the tilt before/after picture here "
                                                     "(needs ../shared/data's tilted head CT)")
    args = ap.parse_args()
    if args.tilt_png and DEFAULT.exists():
        print("wrote", tilt_picture(DEFAULT, Path(args.tilt_png)))
    out = Path(args.outdir or tempfile.mkdtemp(prefix="medrecon_example_"))
    src = Path(args.path) if args.path else (DEFAULT if DEFAULT.exists() else synthetic_series(out / "dicom"))

    print(f"input: {src}")
    rows = describe_series(src)
    for r in rows:
        flag = "" if r["is_volume"] else f"  NOT A VOLUME ({r['reason']})"
        print(f"  #{r['index']} series {r['series_number']} {r['modality']} {r['description']!r} "
              f"size {r['size']} spacing {r['spacing']} {r['orientation']}{flag}")
        for w in r["warnings"]:
            print(f"      warning: {w}")

    first = next(r for r in rows if r["is_volume"])
    vol = medrecon.load(src, series=f"#{first['index']}")  # default: tilt corrected, gaps resampled
    print(vol)
    print("affine (index -> LPS mm):\n", np.round(vol.affine, 4))
    print("centre of voxel (0,0,0), LPS mm:", np.round(vol.index_to_lps([[0, 0, 0]])[0], 3))
    for w in vol.meta["warnings"]:
        print("  meta warning:", w)

    nii = save_volume(vol, out / "volume.nii.gz")
    nrrd = save_volume(vol, out / "volume.nrrd")
    back = medrecon.load(nii)
    assert np.allclose(back.affine, vol.affine) and np.array_equal(back.array, vol.array)
    print(f"wrote {nii} (RAS affine inside) and {nrrd} (LPS); NIfTI reads back identically")

    img = to_sitk(vol)
    ijk = tuple(int(s) // 2 for s in vol.shape[:3])
    assert np.allclose(img.TransformIndexToPhysicalPoint(ijk), vol.index_to_lps([ijk])[0])
    vtk_img = to_vtk_image(vol)
    print(f"SimpleITK image {img.GetSize()} and vtkImageData {vtk_img.GetDimensions()} place voxel {ijk} "
          f"at the same LPS point {np.round(vol.index_to_lps([ijk])[0], 3)}")


if __name__ == "__main__":
    main()
