"""A series carrying fake patient identifiers goes through every command that reads DICOM (info,
convert, mesh with every format, previews, viewer and Slicer scene, segment with a local MONAI
bundle, svr, cohort, anonymize); every output byte (file names, files, stdout/stderr) is searched
for the identifiers: none found. (`segment --dicom-seg` is the documented exception: a DICOM SEG
must carry the source's patient module; `photo`/`multiview` read no DICOM.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

from medrecon import phantoms as P
from rel_fake_ids import IDENT_STRINGS, fake_id_series


def _run(*args, timeout=300):
    env = dict(os.environ, MEDRECON_NO_CACHE="1")
    return subprocess.run([sys.executable, "-m", "medrecon", *map(str, args)], capture_output=True,
                          timeout=timeout, env=env)


def _leaks(blob: bytes) -> list[str]:
    low = blob.lower()
    return [s for s in IDENT_STRINGS if s.lower().encode() in low
            or s.encode("utf-16-le").lower() in low]


def _tree_bytes(folder: Path) -> bytes:
    out = []
    for p in sorted(Path(folder).rglob("*")):
        out.append(str(p.relative_to(folder)).encode())
        if p.is_file():
            out.append(p.read_bytes())
            if p.suffix == ".gz":
                import gzip

                try:
                    out.append(gzip.decompress(p.read_bytes()))
                except OSError:
                    pass
            if p.suffix in (".3mf", ".zip", ".usdz"):
                import zipfile

                with zipfile.ZipFile(p) as z:
                    out.extend(z.read(n) for n in z.namelist())
    return b"\n".join(out)


@pytest.fixture(scope="module")
def fake_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("ids")
    ph = P.sphere_phantom(10.0, spacing=(1.0, 1.0, 1.5), inside=600, outside=-50)
    fake_id_series(root / "cohort" / "study1", volume=ph.volume)
    return root / "cohort" / "study1"


def test_reliability_no_identifiers_in_any_output(fake_series, tmp_path):
    src = fake_series
    assert _leaks(_tree_bytes(src))  # the input does carry them
    logs = []
    r = _run("info", src)
    logs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr
    r = _run("info", "--json", src)
    logs += [r.stdout, r.stderr]
    for out in ("vol.nii.gz", "vol.nrrd", "vol.mha"):
        r = _run("convert", src, "-o", tmp_path / "convert" / out)
        logs += [r.stdout, r.stderr]
        assert r.returncode == 0, r.stderr
    r = _run("mesh", src, "-o", tmp_path / "mesh", "--preset", "ct-bone", "--formats", "stl,obj,ply,vtp,glb,3mf",
             "--slicer", timeout=600)
    logs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr
    from tests.segment.test_segment_ai_bundle import make_bundle

    bundle = make_bundle(tmp_path / "bundle")
    r = _run("segment", src, "-o", tmp_path / "segment" / "seg.nii.gz", "--bundle", bundle, "--device", "cpu",
             timeout=600)
    logs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    r = _run("svr", src, src, "-o", tmp_path / "svr" / "recon.nii.gz", "--method", "average", "--device", "cpu",
             timeout=600)
    logs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    r = _run("anonymize", src, "-o", tmp_path / "anon")
    logs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr
    r = _run("cohort", src.parent, "-o", tmp_path / "cohort", "--workers", "1", "--no-dashboard", "--progress",
             "plain", timeout=600)
    logs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert any((tmp_path / "mesh").glob("*.glb")) and any((tmp_path / "mesh").glob("*.png"))
    assert any((tmp_path / "cohort").rglob("*.stl"))
    assert any((tmp_path / "segment").iterdir()) and any((tmp_path / "svr").iterdir())
    leaks = {d: _leaks(_tree_bytes(tmp_path / d)) for d in ("convert", "mesh", "segment", "svr", "anon", "cohort")}
    leaks["logs"] = _leaks(b"\n".join(logs))
    assert not any(leaks.values()), leaks
