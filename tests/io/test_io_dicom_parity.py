"""dcm2niix parity on every real DICOM series in ../shared/data that has a dcm2niix reference.

One case per DICOM folder (a folder that directly holds DICOM files), discovered from the data
tree, so a new folder with a reference adds a case. The references of a data set are the NIfTI
files under its ``ref_*`` folders whose JSON says dcm2niix made them; a reference inside
``ref_*/<name>/`` belongs to the DICOM folder ``<name>``, the others to every DICOM folder of the
data set holding a series with the reference's SeriesNumber (or, when the reference's file name
shares a word with some folders' names, to those folders only: ``..._cl`` / ``cl_mixed_series_flat``).

For each reference, the real CLI (``python -m medrecon convert``, a fresh process) converts the
matching series, and the output is compared in world space: ``inv(A_ours) @ A_ref`` must be a
signed permutation with an integer offset and the voxels must then be identical. Tolerances, and
why (docs/dicom.md, "dcm2niix parity"):

* float outputs (Philips precise values) to 1e-5 relative: both tools compute in floating
  point, in different order; where dcm2niix stored float values as integers with its own
  ``scl_slope`` (Philips phase maps), to one step of that slope;
* a gantry-tilted series is converted with ``--keep-tilt --keep-gaps`` (dcm2niix's default
  output is uncorrected) and compared index to index: dcm2niix's affine for it is approximate;
* SliceTiming to 1/64 s (dcm2niix holds UIH per-tile times of day in single precision);
* a series dcm2niix writes image by image (``_i<N>`` names: localizers in several orientations)
  must be refused by medrecon with exit code 2 and a one-line reason.

Sidecar fields in :data:`FIELDS` are compared wherever the reference JSON has them. A case whose
folder is large (more than :data:`SLOW_FILES` file conversions in all) is marked ``slow``.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA

pytestmark = pytest.mark.realdata

RAS2LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Sidecar fields compared with dcm2niix wherever its JSON has them (numbers to 1e-4 relative).
FIELDS = ("Modality", "MagneticFieldStrength", "Manufacturer", "ManufacturersModelName", "MRAcquisitionType",
          "SeriesDescription", "ProtocolName", "SequenceName", "SeriesNumber", "SliceThickness", "SpacingBetweenSlices", "EchoTime",
          "RepetitionTime", "FlipAngle", "AcquisitionMatrixPE", "ReconMatrixPE",
          "PixelBandwidth", "ImageOrientationPatientDICOM", "InPlanePhaseEncodingDirectionDICOM",
          "EffectiveEchoSpacing", "TotalReadoutTime", "SliceTiming", "PhaseEncodingAxis")
#: dcm2niix keeps UIH times of day as single-precision HHMMSS numbers: steps of 1/64 s.
SLICE_TIMING_ATOL = 1 / 64


# --------------------------------------------------------------------------------------------
# discovery (collection time: reads directory listings, one JSON per reference and a few bytes
# of one file per folder)
# --------------------------------------------------------------------------------------------
def _is_dicom_file(p: Path) -> bool:
    try:
        if p.name.endswith(".gz"):
            with gzip.open(p, "rb") as fh:
                head = fh.read(132)
        else:
            with open(p, "rb") as fh:
                head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _dicom_folders(dataset: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(dataset):
        rel = Path(root).relative_to(dataset)
        dirs[:] = sorted(d for d in dirs if not d.startswith(("ref_", ".")) and d != "optional")
        if any(_is_dicom_file(Path(root) / f) for f in sorted(files)[:3]):
            out.append(dataset / rel)
    return out


def _references(dataset: Path) -> list[Path]:
    """dcm2niix's NIfTI files under ``ref_*``: its JSON says so; without a JSON, the data set's
    README.txt names dcm2niix (upstream references of the dcm_qa repositories)."""
    refs = []
    readme = dataset / "README.txt"
    says_dcm2niix = readme.exists() and "dcm2niix" in readme.read_text(errors="replace")
    for nii in sorted(dataset.glob("ref_*/**/*.nii*")):
        js = nii.with_name(re.sub(r"\.nii(\.gz)?$", ".json", nii.name))
        try:
            meta = json.loads(js.read_text())
        except (OSError, ValueError):
            if not js.exists() and says_dcm2niix:
                refs.append(nii)
            continue
        if str(meta.get("ConversionSoftware", "")).lower().startswith("dcm2niix"):
            refs.append(nii)
    return refs


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.split(r"[^A-Za-z0-9]+", text) if w and not w.isdigit()}


def _words_match(ref: Path, folder: Path, folders: list[Path], dataset: Path) -> bool:
    """A reference whose file name shares a word with some DICOM folders' names (``..._cl`` and
    ``cl_mixed_series_flat``, ``Philips_...`` and ``dicom/Philips``) belongs to those folders only;
    otherwise to every DICOM folder of its data set."""
    name = _words(re.sub(r"\.nii(\.gz)?$", "", ref.name))
    owners = [f for f in folders if name & _words(str(f.relative_to(dataset)))]
    return not owners or folder in owners


def discover_cases() -> list[tuple[Path, list[Path]]]:
    cases = []
    if not SHARED_DATA.is_dir():
        return cases
    for dataset in sorted(p for p in SHARED_DATA.iterdir() if p.is_dir()):
        refs = _references(dataset)
        if not refs:
            continue
        folders = _dicom_folders(dataset)
        names = {f.name for f in folders}
        for folder in folders:
            mine = [r for r in refs if r.parent.name == folder.name
                    or (r.parent.name not in names and _words_match(r, folder, folders, dataset))]
            if mine:
                cases.append((folder, mine))
    return cases


CASES = discover_cases()
#: a case converting more than this many files in all is marked slow (the fast tier keeps the rest)
SLOW_FILES = 300


def _case_id(case) -> str:
    return str(case[0].relative_to(SHARED_DATA))


def _params():
    if not CASES:
        return [pytest.param(None, id="missing-data")]
    out = []
    for case in CASES:
        n = sum(1 for p in case[0].iterdir() if p.is_file())
        slow = n * max(1, len(case[1])) > SLOW_FILES and n > 50
        out.append(pytest.param(case, id=_case_id(case), marks=[pytest.mark.slow] if slow else []))
    return out


# --------------------------------------------------------------------------------------------
# running the CLI
# --------------------------------------------------------------------------------------------
def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MEDRECON_CACHE_DIR"] = str(cache)  # info then convert on the same folder read headers once
    env["COLUMNS"] = "200"
    return env


def _cli(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medrecon", *args], capture_output=True, text=True,
                          env=_env(cache), timeout=600)


def _ref_json(ref: Path) -> dict:
    js = ref.with_name(re.sub(r"\.nii(\.gz)?$", ".json", ref.name))
    return json.loads(js.read_text()) if js.exists() else {}


def _candidates(series: list[dict], meta: dict, ref: Path) -> list[dict]:
    """Series that could be the reference's: same SeriesNumber (from the reference's JSON, else a
    number in its file name, dcm2niix's ``%s``), same echo, same magnitude/phase."""
    if "SeriesNumber" in meta:
        out = [s for s in series if s.get("series_number") == meta["SeriesNumber"]]
    else:
        tokens = set(re.split(r"[_.]", ref.name))
        out = [s for s in series if str(s.get("series_number")) in tokens]
    te = meta.get("EchoTime")
    if te is not None:
        same = [s for s in out if s.get("echo_time") is None or abs(s["echo_time"] / 1000.0 - te) < 2e-4]
        out = same or out
    phase = any(t in ("P", "PHASE") for t in meta.get("ImageType", []))
    out = [s for s in out if any(t in ("P", "PHASE") for t in s.get("image_type", "").split("\\")) == phase] or out
    return out


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------
def _index_map(A_ours, A_ref, shape_ref, tilted=False):
    """(P, t) with ours_index = P @ ref_index + t, or a string saying why not. For a tilted stack
    kept sheared only the axes are taken from the affines (dcm2niix's is approximate there) and
    the grids are matched index to index."""
    M = np.linalg.inv(A_ours) @ A_ref
    P = np.round(M[:3, :3])
    if sorted(np.abs(P).sum(axis=0)) != [1, 1, 1] or sorted(np.abs(P).sum(axis=1)) != [1, 1, 1]:
        return f"not a signed permutation:\n{np.round(M, 4)}"
    if tilted:
        n_ref = np.abs(P) @ (np.array(shape_ref[:3]) - 1)
        return P.astype(int), np.where((P < 0).any(axis=1), n_ref, 0).astype(int)
    if not np.allclose(M[:3, :3], P, atol=2e-3):
        return f"not a signed permutation:\n{np.round(M, 4)}"
    t = np.round(M[:3, 3])
    if not np.allclose(M[:3, 3], t, atol=2e-2):
        return f"offset not integer: {M[:3, 3]}"
    return P.astype(int), t.astype(int)


def _compare_volume(out: Path, ref: Path, tilted: bool) -> str | None:
    img_o, img_r = nib.load(str(out)), nib.load(str(ref))
    A_o, A_r = RAS2LPS @ img_o.affine, RAS2LPS @ img_r.affine
    ro = np.asanyarray(img_o.dataobj)
    rr = np.asanyarray(img_r.dataobj)
    if ro.ndim != rr.ndim or ro.shape[3:] != rr.shape[3:]:
        return f"shape {ro.shape} vs dcm2niix {rr.shape}"
    m = _index_map(A_o, A_r, rr.shape, tilted)
    if isinstance(m, str):
        return m
    P, t = m
    if tuple(np.abs(P) @ np.array(rr.shape[:3])) != ro.shape[:3]:
        return f"grid {ro.shape} does not cover dcm2niix's {rr.shape} under {P.tolist()}"
    idx = np.indices(rr.shape[:3]).reshape(3, -1)
    ours = P @ idx + t[:, None]
    if (ours < 0).any() or (ours >= np.array(ro.shape[:3])[:, None]).any():
        return f"offset {t.tolist()} moves dcm2niix's grid outside ours"
    a = ro[ours[0], ours[1], ours[2]].astype(np.float64)
    b = rr[idx[0], idx[1], idx[2]].astype(np.float64)
    slope = float(img_r.dataobj.slope if img_r.dataobj.slope is not None else 1.0)
    inter = float(img_r.dataobj.inter if img_r.dataobj.inter is not None else 0.0)
    stored_int = np.issubdtype(img_r.get_data_dtype(), np.integer)
    if np.issubdtype(ro.dtype, np.integer) and np.issubdtype(rr.dtype, np.integer):
        ok = np.array_equal(a, b)
    elif stored_int and (slope != 1.0 or inter != 0.0):
        # dcm2niix stored float values as integers with scl_slope: one quantisation step
        ok = np.allclose(a, b, rtol=1e-5, atol=abs(slope))
    else:  # float on either side (scaling computed in floating point by both tools)
        ok = np.allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(b).max())))
    if not ok:
        return f"voxels differ: max |diff| {float(np.abs(a - b).max()):g} (dtypes {ro.dtype}, {rr.dtype})"
    return None


def _perm(out: Path, ref: Path):
    A_o, A_r = RAS2LPS @ nib.load(str(out)).affine, RAS2LPS @ nib.load(str(ref)).affine
    return np.round(np.linalg.inv(A_o) @ A_r)[:3, :3].astype(int)


def _same(a, b, key) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, key) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if key == "SliceTiming":
            return abs(a - b) <= SLICE_TIMING_ATOL
        return abs(a - b) <= 1e-4 * max(abs(a), abs(b), 1e-9)
    return str(a) == str(b)


def _compare_sidecar(out: Path, ref: Path, P) -> list[str]:
    ours = json.loads(out.with_name(re.sub(r"\.nii(\.gz)?$", ".json", out.name)).read_text())
    theirs = _ref_json(ref)
    bad = []
    for key in FIELDS:
        if key not in theirs:
            continue
        a, b = ours.get(key), theirs[key]
        if key == "SliceTiming" and isinstance(a, list) and P[2, 2] == -1:
            a = a[::-1]  # slices in the opposite order along the slice axis
        if key == "PhaseEncodingAxis" and a is None and "PhaseEncodingDirection" in ours:
            a = ours["PhaseEncodingDirection"][0]
        if a is None or not _same(a, b, key):
            bad.append(f"{key}: medrecon {a!r} vs dcm2niix {b!r}")
    return bad


def _compare_gradients(out: Path, ref: Path, P) -> list[str]:
    stem_o, stem_r = (re.sub(r"\.nii(\.gz)?$", "", p.name) for p in (out, ref))
    bval_r, bvec_r = ref.with_name(stem_r + ".bval"), ref.with_name(stem_r + ".bvec")
    if not bval_r.exists():
        return []
    bval_o, bvec_o = out.with_name(stem_o + ".bval"), out.with_name(stem_o + ".bvec")
    if not bval_o.exists() or not bvec_o.exists():
        return ["no .bval/.bvec written (dcm2niix wrote them)"]
    bad = []
    if not np.allclose(np.loadtxt(bval_o), np.loadtxt(bval_r), rtol=1e-5, atol=1e-4):
        bad.append("bval differs")
    # FSL bvecs are in voxel axes with x negated for a positive-determinant affine: undo, map, compare
    def voxel_axes(bvec, nii):
        v = np.loadtxt(bvec).reshape(3, -1)
        if np.linalg.det(nib.load(str(nii)).affine[:3, :3]) > 0:
            v[0] = -v[0]
        return v
    if not np.allclose(voxel_axes(bvec_o, out), P @ voxel_axes(bvec_r, ref), atol=2e-5):
        bad.append("bvec differs (in world space)")
    return bad


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------
@pytest.mark.skipif(not CASES and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                    reason="no real data with dcm2niix references (../shared/data)")
@pytest.mark.parametrize("case", _params())
def test_dcm2niix_parity(case, tmp_path):
    assert case is not None, f"no DICOM folder with a dcm2niix reference under {SHARED_DATA}"
    folder, refs = case
    cache = tmp_path / "cache"
    info = _cli(["info", "--json", str(folder)], cache)
    assert info.returncode == 0, info.stderr
    series = [s for s in json.loads(info.stdout) if s.get("kind") != "non-image"]
    problems: list[str] = []
    matched = 0
    converted: dict[tuple, tuple] = {}
    for ref in refs:
        meta = _ref_json(ref)
        cands = _candidates(series, meta, ref)
        if not cands:
            continue  # a reference of another folder of the data set
        matched += 1
        if re.search(r"_i\d+$", re.sub(r"\.nii(\.gz)?$", "", ref.name)) and not any(s["is_volume"] for s in cands):
            # dcm2niix wrote image by image: medrecon must refuse clearly, not stack
            out = tmp_path / f"refused_{cands[0]['index']}.nii.gz"
            r = _cli(["convert", str(folder), "--series", f"#{cands[0]['index']}", "-o", str(out)], cache)
            msg = r.stderr.strip()
            if r.returncode != 2 or len(msg.splitlines()) != 1 or "cannot be loaded as a volume" not in msg:
                problems.append(f"{ref.name}: expected a one-line refusal (exit 2), got {r.returncode}: {msg}")
            continue
        tilted = False
        errors = []
        for s in cands:
            tilted = abs(float(s.get("tilt_deg") or 0.0)) > 0.01
            opts = ["--philips-scaling", "display"] if meta.get("UsePhilipsFloatNotDisplayScaling") == 0 else []
            if tilted:
                opts += ["--keep-tilt", "--keep-gaps"]
            key = (s["index"], tuple(opts))
            if key not in converted:
                out = tmp_path / f"s{s['index']}{'_'.join(opts).replace('-', '')}.nii.gz"
                r = _cli(["convert", str(folder), "--series", f"#{s['index']}", "-o", str(out), *opts], cache)
                converted[key] = (out, r)
            out, r = converted[key]
            if r.returncode != 0:
                errors.append(f"#{s['index']}: convert failed: {r.stderr.strip()[-300:]}")
                continue
            why = _compare_volume(out, ref, tilted)
            if why is not None:
                errors.append(f"#{s['index']}: {why}")
                continue
            P = _perm(out, ref)
            errors = _compare_sidecar(out, ref, P) + _compare_gradients(out, ref, P)
            errors = [f"#{s['index']}: {e}" for e in errors]
            break
        if errors:
            problems.append(f"{ref.name}: " + "; ".join(errors))
    assert matched, f"{folder}: none of the references {[r.name for r in refs]} matches a series here"
    assert not problems, "\n".join(problems)
