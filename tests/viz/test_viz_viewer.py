"""The offline HTML viewer in a real headless Chromium (Debian's), driven over the DevTools
protocol through ``--remote-debugging-pipe`` (no websocket library needed)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from medrecon.errors import InputError, MeshError
from medrecon.mesh import SurfaceModel
from medrecon.viz.html import load_mesh_file, write_viewer, write_viewer_from_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _need_chromium():
    if CHROMIUM is None:
        msg = "chromium missing: run scripts/install_system_deps.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)


class Chromium:
    """Minimal DevTools-protocol client over Chromium's pipe transport (fd 3 in, fd 4 out)."""

    def __init__(self, user_dir: Path, width=900, height=600):
        _need_chromium()
        to_r, self._w = os.pipe()   # we write -> chromium reads on fd 3
        self._r, from_w = os.pipe()  # chromium writes on fd 4 -> we read
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                "--use-angle=swiftshader", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-extensions", "--remote-debugging-pipe",
                f"--user-data-dir={user_dir}", f"--window-size={width},{height}", "about:blank"]

        def child_fds():  # chromium talks on fd 3 (reads) and fd 4 (writes)
            a, b = os.dup(to_r), os.dup(from_w)  # out of the way of 3 and 4 first
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(args, preexec_fn=child_fds, pass_fds=(3, 4),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = [t for t in targets if t["type"] == "page"][0]
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]

    def _read(self, timeout=30.0) -> dict:
        import select

        end = time.time() + timeout
        while b"\0" not in self._buf:
            left = end - time.time()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, timeout=30.0, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JS error in {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expr: str, timeout=60.0):
        end = time.time() + timeout
        while time.time() < end:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.2)
        raise TimeoutError(expr)

    def screenshot(self, path: Path) -> np.ndarray:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        from tests.viz.test_viz_preview import read_png

        return read_png(path)

    def click(self, x: float, y: float):
        for t in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=t, x=x, y=y, button="left", clickCount=1)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


def red(img):
    a = img.astype(int)
    return (a[..., 0] > 80) & (a[..., 0] > 2 * a[..., 1]) & (a[..., 0] > 2 * a[..., 2])


def blue(img):
    a = img.astype(int)
    return (a[..., 2] > 80) & (a[..., 2] > 2 * a[..., 0]) & (a[..., 2] > 1.5 * a[..., 1])


def _balls(blue_name="blue ball"):
    s = trimesh.creation.icosphere(3, radius=20)
    return [SurfaceModel("red ball", s.vertices + [40, 0, 0], s.faces, (0.9, 0.1, 0.1), 1),
            SurfaceModel(blue_name, s.vertices + [-40, 0, 0], s.faces, (0.1, 0.2, 0.95), 2)]


HOSTILE = 'blue </script><script>window.pwned=1</script> "ball" <!-- & x'


def _payload(html_path: Path) -> dict:
    text = html_path.read_text()
    block = text.split('<script id="medrecon-data" type="application/json">', 1)[1].split("</script>", 1)[0]
    return json.loads(block)


def test_viewer_file_is_self_contained(tmp_path):
    out = write_viewer(_balls(), tmp_path / "v.html", title="two balls <test>")
    text = out.read_text()
    assert out.stat().st_size < 3_000_000
    assert "<script src" not in text.lower() and "<link" not in text.lower()
    assert "default-src 'none'" in text  # CSP: the page may not fetch anything
    assert "two balls &lt;test&gt;" in text
    bundle = Path(__file__).resolve().parents[2] / "medrecon/viz/static/three-bundle.min.js"
    assert bundle.stat().st_size < 1_500_000
    assert (bundle.parent / "LICENSE-three.txt").read_text().startswith("The MIT License")


def test_viewer_in_headless_chromium(tmp_path):
    _need_chromium()
    models = _balls(HOSTILE)  # a name that tries to break out of the data <script>
    html_path = write_viewer(models, tmp_path / "viewer.html", title="two balls")
    assert [m["name"] for m in _payload(html_path)["models"]] == ["red ball", HOSTILE]
    browser = Chromium(tmp_path / "profile")
    try:
        browser.call("Network.enable")
        browser.call("Page.enable")
        blank = browser.screenshot(tmp_path / "blank.png")
        browser.call("Page.navigate", url=html_path.as_uri())
        browser.wait_for("window.medreconViewer && (window.medreconViewer.ready || window.medreconViewer.error)")
        assert browser.eval("window.medreconViewer.error") is None
        assert browser.eval("window.medreconViewer.names") == ["red ball", HOSTILE]
        assert browser.eval("window.pwned === undefined")
        time.sleep(0.3)
        shot = browser.screenshot(tmp_path / "shot.png")
        assert shot.shape == blank.shape
        assert np.mean(np.any(shot != blank, axis=2)) > 0.2  # not an empty page
        n_red, n_blue = red(shot).sum(), blue(shot).sum()
        assert n_red > 3000 and n_blue > 3000
        # front view: the red ball (patient's left, +x) is on the right of the blue one
        assert np.argwhere(red(shot))[:, 1].mean() > np.argwhere(blue(shot))[:, 1].mean()
        size = browser.eval("document.getElementById('size').textContent")
        assert "120 (L-R) x 40.0 (A-P) x 40.0 (S-I) mm" in size

        # click the red ball's checkbox with a real mouse event
        box = browser.eval("(() => { const r = document.querySelector('[data-structure=\"red ball\"] input')"
                           ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        browser.click(*box)
        browser.wait_for("window.medreconViewer.isVisible('red ball') === false", timeout=10)
        time.sleep(0.3)
        hidden = browser.screenshot(tmp_path / "hidden.png")
        assert red(hidden).sum() < n_red * 0.02  # only the legend swatch may stay red
        assert blue(hidden).sum() > n_blue * 0.9
        assert "40.0 (L-R) x 40.0 (A-P) x 40.0 (S-I) mm" in browser.eval("document.getElementById('size').textContent")
        browser.click(*box)
        browser.wait_for("window.medreconViewer.isVisible('red ball') === true", timeout=10)
        time.sleep(0.3)
        assert red(browser.screenshot(tmp_path / "again.png")).sum() > n_red * 0.9

        # two-point measurement on the blue ball: front-most points of the sphere, then distance
        browser.click(*browser.eval("(() => { const r = document.getElementById('measure').getBoundingClientRect();"
                                    " return [r.x + 5, r.y + 5]; })()"))
        ys, xs = np.nonzero(blue(browser.screenshot(tmp_path / "m.png")))
        cx, cy = xs.mean(), ys.mean()
        browser.click(cx - 10, cy)
        browser.click(cx + 10, cy)
        dist = browser.wait_for("window.medreconViewer.measure.distance", timeout=10)
        pts = np.array(browser.eval("window.medreconViewer.measure.points"))
        assert np.allclose(np.linalg.norm(pts - [-40, 0, 0], axis=1), 20, atol=0.6)  # on the sphere surface (LPS mm)
        assert abs(dist - np.linalg.norm(pts[0] - pts[1])) < 1e-6 and dist > 1

        # no network: every request the page made was for the file itself
        urls = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
        assert urls and all(u.startswith(("file://", "data:", "about:")) for u in urls), urls
    finally:
        browser.close()


def test_viewer_from_mesh_files_keeps_space_and_colour(tmp_path):
    from medrecon.io.meshes import write_models

    models = _balls()
    lps = write_models(models, tmp_path / "lps", ["stl", "ply", "vtp", "obj", "glb"])
    ras = write_models(models, tmp_path / "ras", ["stl"], space="RAS")
    for p in [*lps, *ras]:
        if p.suffix == ".mtl":
            continue
        got = load_mesh_file(p)
        assert len(got) == (2 if p.suffix == ".glb" else 1)
        for g in got:
            m = next(m for m in models if m.name.replace(" ", "_") in (g.name.replace(" ", "_"), p.stem))
            np.testing.assert_allclose(g.bounds(), m.bounds(), atol=1e-3, err_msg=str(p))
            if p.suffix in (".ply", ".vtp", ".obj", ".glb"):
                np.testing.assert_allclose(g.color, m.color, atol=0.02, err_msg=str(p))
    out = write_viewer_from_files([p for p in lps if p.suffix == ".stl"], tmp_path / "v.html")
    data = _payload(out)
    assert sorted(m["name"] for m in data["models"]) == ["blue_ball", "red_ball"]
    for m in data["models"]:
        v = np.frombuffer(base64.b64decode(m["positions"]), "<f4").reshape(-1, 3)
        assert abs(abs(v[:, 0].mean()) - 40) < 0.5


def test_viewer_errors(tmp_path):
    with pytest.raises(MeshError, match="no non-empty"):
        write_viewer([], tmp_path / "a.html")
    with pytest.raises(InputError, match="not found"):
        write_viewer_from_files([tmp_path / "missing.stl"], tmp_path / "b.html")
    (tmp_path / "x.xyz").write_text("1 2 3")
    with pytest.raises(InputError, match="unsupported mesh format"):
        write_viewer_from_files([tmp_path / "x.xyz"], tmp_path / "c.html")
    (tmp_path / "bad.stl").write_bytes(b"\0" * 10)
    with pytest.raises(InputError, match="bad.stl"):
        write_viewer_from_files([tmp_path / "bad.stl"], tmp_path / "d.html")
    assert not list(tmp_path.glob("*.html"))


def test_cli_view(tmp_path, capsys):
    from medrecon.cli import main
    from medrecon.io.meshes import write_models

    stls = write_models(_balls(), tmp_path, ["stl"])
    try:
        main(["view", *map(str, stls), "-o", str(tmp_path / "v.html"), "--title", "balls"])
    except SystemExit as e:  # a clean run may also end with exit code 0
        assert e.code in (0, None)
    text = (tmp_path / "v.html").read_text()
    assert "<title>balls</title>" in text and text.count('"positions"') == 2
    with pytest.raises(SystemExit) as e:
        main(["view", str(tmp_path / "nothing.stl"), "-o", str(tmp_path / "w.html")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nothing.stl" in err and "not found" in err
    assert not (tmp_path / "w.html").exists()


def test_viewer_decimates_big_meshes_for_display_only(tmp_path):
    s = trimesh.creation.icosphere(6, radius=30)  # 81920 triangles
    big = SurfaceModel("big", s.vertices, s.faces, (0.8, 0.8, 0.7), 1)
    small = _balls()[0]
    out = write_viewer([big, small], tmp_path / "v.html", max_triangles=20_000)
    data = _payload(out)
    tris = {m["name"]: m["n_triangles"] for m in data["models"]}
    assert sum(tris.values()) <= 21_000 and tris["big"] < 81920
    v = np.frombuffer(base64.b64decode(data["models"][0]["positions"]), "<f4").reshape(-1, 3)
    assert np.allclose(np.linalg.norm(v, axis=1), 30, atol=1.0)  # still the same sphere
    assert big.n_triangles == 81920  # the caller's model is untouched


def test_viewer_duplicate_names_get_unique_checkboxes(tmp_path):
    a, b = _balls()
    b.name = a.name
    data = _payload(write_viewer([a, b], tmp_path / "v.html"))
    assert [m["name"] for m in data["models"]] == ["red ball", "red ball (2)"]
    assert b.name == "red ball"  # the caller's models are not renamed
