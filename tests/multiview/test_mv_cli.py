"""`medrecon multiview` through the CLI: a small known-camera run with viewer, preview and signing; errors exit 2."""
from __future__ import annotations

import json

import pytest

from medrecon.cli import main


def _run(args):
    try:
        main(args)
    except SystemExit as e:
        return e.code
    return 0


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    from medrecon.multiview import synthetic as S
    from medrecon.multiview.cameras import write_colmap_text

    root = tmp_path_factory.mktemp("mv_small")
    truth, _ = S.write_photo_set(root / "photos", 10, 192, 144, supersample=1)
    write_colmap_text(truth, root / "cams")
    return root


@pytest.mark.slow  # measured: 31 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_multiview_cli_known_cameras_signed(small_set, mv_credentials, tmp_path):
    from medrecon.provenance import c2pa_read

    key, cert = mv_credentials
    out = tmp_path / "out"
    code = _run(["multiview", str(small_set / "photos"), "-o", str(out), "--cameras", str(small_set / "cams"),
                 "--faces", "4000", "--device", "cpu", "--sign-key", str(key), "--sign-cert", str(cert)])
    assert code == 0
    for name in ("model.glb", "model.usdz", "viewer.html", "preview.png", "model.glb.c2pa", "report.json"):
        assert (out / name).is_file(), name
    r = c2pa_read(out / "preview.png")
    assert r["validation_state"] == "Valid"
    rep = json.loads((out / "report.json").read_text())
    assert rep["cameras_registered"] == 10 and rep["c2pa"]
    assert "<html" in (out / "viewer.html").read_text()[:2000].lower()


@pytest.mark.parametrize("args,needle", [
    (["multiview", "/nonexistent/photos", "-o", "{tmp}/o"], "not found"),
    (["multiview", "{photos}", "-o", "{tmp}/o", "--sign-key", "{photos}/view_000.png"], "--sign-cert"),
    (["multiview", "{photos}", "-o", "{tmp}/o", "--method", "magic"], "--method"),
])
def test_multiview_cli_errors_exit_2(small_set, tmp_path, capsys, args, needle):
    args = [a.format(tmp=tmp_path, photos=small_set / "photos") for a in args]
    assert _run(args) == 2
    err = capsys.readouterr().err
    assert needle in err
