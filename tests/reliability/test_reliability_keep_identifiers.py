"""`medrecon mesh --keep-identifiers` (issue 22): only when asked, the patient block in
report.json, the PatientID in file names and the identifiers in the mesh headers (GLB asset
extras, 3MF metadata, VTP field data); without it, none of them anywhere."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medrecon import phantoms as P

pytestmark = pytest.mark.slow  # two mesh runs in subprocesses
from rel_fake_ids import FAKE, IDENT_STRINGS, fake_id_series


@pytest.fixture(scope="module")
def fake_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("keepids")
    ph = P.sphere_phantom(8.0, spacing=(1.0, 1.0, 1.5), inside=600, outside=-50)
    fake_id_series(root / "s", volume=ph.volume)
    return root / "s"


def _tree(folder):
    return b"\n".join(str(p.relative_to(folder)).encode() + b"\n" + p.read_bytes()
                      for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.parametrize("keep", [False, True])
def test_reliability_keep_identifiers_both_ways(fake_series, tmp_path, keep):
    out = tmp_path / "o"
    args = [sys.executable, "-m", "medrecon", "mesh", str(fake_series), "-o", str(out), "--preset", "ct-bone",
            "--formats", "stl,glb,3mf,vtp", "--no-preview"] + (["--keep-identifiers"] if keep else [])
    r = subprocess.run(args, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-1500:]
    rep = json.loads((out / "report.json").read_text())
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    blob = _tree(out)
    if not keep:
        assert "patient" not in rep
        assert not any(s.encode() in blob for s in IDENT_STRINGS)
        assert "bone.stl" in names
        return
    pid = FAKE["PatientID"]
    assert rep["patient"]["PatientID"] == pid and rep["patient"]["PatientName"] == FAKE["PatientName"]
    assert f"{pid}_bone.stl" in names and f"{pid}_bone.vtp" in names
    for fmt in ("glb", "3mf", "vtp"):
        f = next(p for p in out.iterdir() if p.suffix == f".{fmt}")
        data = f.read_bytes()
        if fmt == "vtp":  # field data, base64 and compressed in the file: read it with VTK
            from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

            rd = vtkXMLPolyDataReader()
            rd.SetFileName(str(f))
            rd.Update()
            fd = rd.GetOutput().GetFieldData()
            data = "".join(str(fd.GetAbstractArray(i).GetValue(0)) for i in range(fd.GetNumberOfArrays())
                           if fd.GetAbstractArray(i).IsA("vtkStringArray")).encode()
        if fmt == "3mf":
            import zipfile

            with zipfile.ZipFile(f) as z:
                data = b"".join(z.read(n) for n in z.namelist())
        assert pid.encode() in data, fmt
