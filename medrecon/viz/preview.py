"""PNG previews of surface models: front, side and top views, legend and scale bar.

Rendering is done offscreen with VTK. Without a display, VTK's pip wheel (9.4+) renders through
EGL (Mesa's surfaceless platform, CPU llvmpipe; Debian packages ``libegl1``, ``libegl-mesa0``,
``libgl1-mesa-dri``) or, failing that, OSMesa (``libosmesa6``). :func:`offscreen_window` picks
the first that works and says which in :data:`RENDER_BACKEND`. Where no OpenGL path works at
all, a small numpy rasteriser (:mod:`medrecon.viz._softrender`, flat shading) draws the same
views, so previews never fail for want of OpenGL.

Views use a parallel projection with one common scale, so a single millimetre scale bar holds
for all three panels. Model vertices are LPS millimetres; the views are anatomical:

* **front** (anterior view): camera in front of the patient, superior up, patient's left on the
  right of the picture;
* **side** (left lateral view): camera at the patient's left, superior up, anterior on the left;
* **top** (superior view): camera above the head, anterior up.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from medrecon.errors import MeshError
from medrecon.mesh import SurfaceModel
from medrecon.viz import _raster as R

#: Name of the VTK render-window class that worked last ("vtkEGLRenderWindow", ...).
RENDER_BACKEND: str | None = None

#: (name, direction from the centre to the camera (LPS), view-up (LPS))
VIEWS = (
    ("front", (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    ("side", (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    ("top", (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
)


def offscreen_window(width: int, height: int):
    """Return a VTK render window that draws offscreen, trying X (if DISPLAY), EGL, OSMesa.

    Raises
    ------
    MeshError
        When no OpenGL path works (install ``libegl1 libegl-mesa0 libgl1-mesa-dri`` or
        ``libosmesa6``; ``scripts/install_system_deps.sh`` does).
    """
    global RENDER_BACKEND
    import vtkmodules.vtkRenderingOpenGL2 as gl
    from vtkmodules.vtkCommonCore import vtkObject

    candidates = []
    if os.environ.get("DISPLAY"):
        candidates.append("vtkXOpenGLRenderWindow")
    candidates += ["vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow"]
    if RENDER_BACKEND in candidates:  # what worked before first
        candidates.remove(RENDER_BACKEND)
        candidates.insert(0, RENDER_BACKEND)
    errors = []
    prev = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()
    try:
        for name in candidates:
            cls = getattr(gl, name, None)
            if cls is None:
                continue
            try:
                rw = cls()
                rw.SetOffScreenRendering(1)
                rw.SetSize(int(width), int(height))
                rw.Render()
                if not rw.SupportsOpenGL():
                    raise RuntimeError("no OpenGL support")
            except Exception as exc:  # pragma: no cover - depends on the machine
                errors.append(f"{name}: {exc}")
                continue
            RENDER_BACKEND = name
            return rw
    finally:
        vtkObject.SetGlobalWarningDisplay(prev)
    raise MeshError("VTK cannot render offscreen here (tried " + ", ".join(candidates)
                    + "); install libegl1 libegl-mesa0 libgl1-mesa-dri (scripts/install_system_deps.sh)"
                    + (f" [{'; '.join(errors)}]" if errors else ""))


def _polydata(model: SurfaceModel):
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals

    pts = vtkPoints()
    pts.SetData(numpy_to_vtk(np.ascontiguousarray(model.vertices, np.float64), deep=True))
    faces = np.ascontiguousarray(model.faces, np.int64)
    offsets = np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_to_vtkIdTypeArray(faces.ravel(), deep=True))
    pd = vtkPolyData()
    pd.SetPoints(pts)
    pd.SetPolys(cells)
    nf = vtkPolyDataNormals()
    nf.SetInputData(pd)
    nf.SplittingOff()
    nf.ConsistencyOn()
    nf.Update()
    return nf.GetOutput()


def _grab(rw) -> np.ndarray:
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    w2i = vtkWindowToImageFilter()
    w2i.SetInput(rw)
    w2i.SetInputBufferTypeToRGB()
    w2i.ReadFrontBufferOff()
    w2i.Update()
    im = w2i.GetOutput()
    nx, ny, _ = im.GetDimensions()
    a = vtk_to_numpy(im.GetPointData().GetScalars()).reshape(ny, nx, -1)[..., :3]
    return np.ascontiguousarray(a[::-1])


def render_views(models: Sequence[SurfaceModel], panel_px: int = 420, background=R.BACKGROUND,
                 backend: str = "auto") -> tuple[list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], float]:
    """Render the models from the three anatomical views.

    Parameters
    ----------
    backend : "auto", "vtk" or "software"
        ``auto`` uses VTK's offscreen OpenGL and falls back to the numpy rasteriser
        (:mod:`medrecon.viz._softrender`) when no OpenGL path works; ``vtk`` fails instead.

    Returns
    -------
    panels : list of (view name, (H, W, 3) uint8 image, screen-right LPS vector, screen-up LPS vector)
    px_per_mm : float
        Pixels per millimetre, the same in every panel (parallel projection).
    """
    global RENDER_BACKEND
    drawable = [m for m in models if m.n_triangles > 0 and len(m.vertices) > 0]
    if not drawable:
        raise MeshError("nothing to render: every model is empty")
    if backend not in ("auto", "vtk", "software"):
        raise MeshError(f"unknown render backend {backend!r} (auto, vtk, software)")
    lo = np.min([m.vertices.min(0) for m in drawable], axis=0)
    hi = np.max([m.vertices.max(0) for m in drawable], axis=0)
    centre = (lo + hi) / 2
    half = max(float(np.max(hi - lo)) / 2 * 1.12, 1.0)  # common half-height in mm (square panels)
    px_per_mm = panel_px / (2 * half)

    rw = None
    if backend != "software":
        try:
            rw = offscreen_window(panel_px, panel_px)
        except MeshError:
            if backend == "vtk":
                raise
    if rw is None:
        from medrecon.viz import _softrender

        RENDER_BACKEND = "software"
        panels = []
        for name, direction, up in VIEWS:
            d, u = np.asarray(direction, float), np.asarray(up, float)
            right = np.cross(-d, u)
            img = _softrender.render([(m.vertices, m.faces, m.color) for m in drawable], panel_px, panel_px,
                                     centre, right, u, d, px_per_mm, background)
            panels.append((name, img, right, u))
        return panels, px_per_mm

    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer

    ren = vtkRenderer()
    ren.SetBackground(*[c / 255 for c in background])
    rw.AddRenderer(ren)
    for m in drawable:
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(_polydata(m))
        mapper.ScalarVisibilityOff()
        actor = vtkActor()
        actor.SetMapper(mapper)
        p = actor.GetProperty()
        p.SetColor(*[float(c) for c in m.color])
        p.SetAmbient(0.15)
        p.SetDiffuse(0.8)
        p.SetSpecular(0.2)
        p.SetSpecularPower(20)
        ren.AddActor(actor)
    cam = ren.GetActiveCamera()
    cam.ParallelProjectionOn()
    panels = []
    for name, direction, up in VIEWS:
        d = np.asarray(direction)
        cam.SetFocalPoint(*centre)
        cam.SetPosition(*(centre + d * (half * 10)))
        cam.SetViewUp(*up)
        cam.SetParallelScale(half)
        ren.ResetCameraClippingRange()
        ren.LightFollowCameraOn()
        rw.Render()
        right = np.cross(-d, np.asarray(up))
        panels.append((name, _grab(rw), right, np.asarray(up, float)))
    rw.Finalize()
    return panels, px_per_mm


def render_previews(models: Sequence[SurfaceModel], out_png: str | os.PathLike,
                    size_mm_bar: bool = True, panel_px: int = 420, title: str | None = None,
                    backend: str = "auto") -> Path:
    """Render front, side and top views of ``models`` into one PNG with legend and scale bar.

    Parameters
    ----------
    models : sequence of SurfaceModel
        Meshes with vertices in LPS mm; each drawn in its own ``color``.
    out_png : path
        Output PNG (written atomically).
    size_mm_bar : bool
        Draw a millimetre scale bar in every panel (the panels share one scale).
    panel_px : int
        Side of each square view in pixels.
    title : str, optional
        Heading; defaults to the number of structures and the overall size in mm.
    backend : "auto", "vtk" or "software"
        See :func:`render_views`; ``auto`` (VTK, else the numpy rasteriser) never fails for
        want of OpenGL.

    Returns
    -------
    Path of the written PNG.

    Raises
    ------
    MeshError
        No models, only empty models, or (``backend="vtk"``) no working offscreen renderer.
    """
    out_png = Path(out_png)
    models = list(models)
    if not models:
        raise MeshError("no surface models to render", path=out_png)
    try:
        panels, px_per_mm = render_views(models, panel_px, backend=backend)
    except MeshError as exc:
        raise MeshError(str(exc), path=out_png) from None
    drawable = [m for m in models if m.n_triangles > 0]
    lo = np.min([m.vertices.min(0) for m in drawable], axis=0)
    hi = np.max([m.vertices.max(0) for m in drawable], axis=0)
    size = hi - lo

    head, gap = 34, 8
    legend_cols = 3
    rows = (len(drawable) + legend_cols - 1) // legend_cols
    legend_h = 14 + 22 * rows
    width = 3 * panel_px + 4 * gap
    img = R.canvas(head + panel_px + gap + legend_h + gap, width, (14, 15, 18))
    heading = title or (f"{len(drawable)} structure{'s' if len(drawable) != 1 else ''} - overall "
                        f"{size[0]:.1f} x {size[1]:.1f} x {size[2]:.1f} mm (L-R x A-P x S-I)")
    R.draw_text(img, heading, gap, head // 2, size=15, bold=True, anchor="ml")

    for n, (name, tile, right, up) in enumerate(panels):
        x0, y0 = gap + n * (panel_px + gap), head
        R.paste(img, tile, x0, y0)
        R.draw_text(img, name, x0 + 8, y0 + 6, size=14, bold=True)
        if name == "top":  # the QC montage's axial slice is seen from the feet: say which this is
            R.draw_text(img, "seen from above: R on the right", x0 + 8, y0 + 26, (170, 175, 185), 12)
        # orientation letters on the panel edges
        col = (150, 200, 255)
        R.draw_text(img, R.axis_letter(right), x0 + panel_px - 6, y0 + panel_px // 2, col, 14, True, "mr")
        R.draw_text(img, R.axis_letter(-right), x0 + 6, y0 + panel_px // 2, col, 14, True, "ml")
        R.draw_text(img, R.axis_letter(up), x0 + panel_px // 2, y0 + 6, col, 14, True, "tc")
        R.draw_text(img, R.axis_letter(-up), x0 + panel_px // 2, y0 + panel_px - 4, col, 14, True, "bc")
        if size_mm_bar:
            R.draw_scale_bar(img, x0 + 12, y0 + panel_px - 12, px_per_mm, panel_px // 3)

    ly = head + panel_px + gap + 8
    colw = (width - 2 * gap) // legend_cols
    for i, m in enumerate(drawable):
        x = gap + (i % legend_cols) * colw
        y = ly + (i // legend_cols) * 22
        R.fill_rect(img, x, y, x + 16, y + 16, R.color_u8(m.color))
        name = m.name if len(m.name) <= 40 else m.name[:38] + "..."
        label = name if m.label in (0, None) else f"{name} ({m.label})"
        R.draw_text(img, label, x + 22, y + 8, size=13, anchor="ml")
    return R.write_png(img, out_png)
