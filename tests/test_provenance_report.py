"""Provenance records and report.json: JSON-able, fingerprinted, no identifiers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import medrecon
from medrecon.provenance import (file_sha256, input_fingerprint, jsonable, path_token,
                                 provenance_record, spec_name)
from medrecon.report import read_report, write_report
from medrecon.volume import Volume


def test_jsonable():
    out = jsonable({"a": np.float32(1.5), 2: np.arange(3), "p": Path("/x/y"), "t": (np.bool_(True), float("nan")),
                    "n": np.int64(4)})
    assert out == {"a": 1.5, "2": [0, 1, 2], "p": "/x/y", "t": [True, None], "n": 4}
    json.dumps(out)


def test_record(tmp_path):
    f = tmp_path / "Doe_John_scan.nii.gz"
    f.write_bytes(b"abc")
    rec = provenance_record("mesh", {"smoothing": np.float64(0.5)}, inputs=[f, b"xyz"], extra={"k": 1})
    assert rec["generator"] == f"medrecon {medrecon.__version__}" and rec["medrecon_version"] == medrecon.__version__
    assert rec["parameters"] == {"smoothing": 0.5} and rec["k"] == 1
    assert rec["inputs"][0] == {"name": f.name, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
    assert str(tmp_path) not in json.dumps(rec)  # base names only, never the folder
    assert rec["created_utc"].endswith("Z")
    from medrecon.io.meshes.gltf import glb_bytes, read_glb_json
    from medrecon.mesh import SurfaceModel

    doc = read_glb_json(glb_bytes([SurfaceModel("t", [[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])], rec))
    assert doc["asset"]["version"] == "2.0" and doc["asset"]["extras"]["provenance"]["command"] == "mesh"


def test_fingerprints_and_tokens(tmp_path):
    a = Volume(np.arange(8, dtype=np.int16).reshape(2, 2, 2), np.eye(4))
    b = Volume(a.array.copy(), np.diag([2.0, 2, 2, 1]))
    assert input_fingerprint(a) == input_fingerprint(b)
    assert input_fingerprint(a)["sha256"] != input_fingerprint(a.with_array(a.array + 1))["sha256"]
    assert path_token(tmp_path / "Jane Doe").startswith("sha256:") and "Jane" not in path_token(tmp_path / "Jane Doe")
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.txt").write_text("1")
    h1 = file_sha256(d)
    (d / "x.txt").write_text("2")
    assert file_sha256(d) != h1
    assert spec_name("ct-bone") == "ct-bone" and spec_name(d / "x.txt") == "x.txt"


def test_write_report_atomic_json(tmp_path):
    p = write_report(tmp_path / "out" / "report.json", {"v": np.float32(2.0), "arr": np.eye(2)})
    assert read_report(p) == {"v": 2.0, "arr": [[1.0, 0.0], [0.0, 1.0]]}
    assert not [x for x in p.parent.iterdir() if x.name.startswith(".report.json")]  # no temporary left
