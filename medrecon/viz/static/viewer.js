// medrecon offline viewer (inlined into every viewer HTML; three.js is inlined before it).
// Data: JSON in <script id="medrecon-data">; geometry as base64 little-endian float32 / uint32.
// Vertices are LPS millimetres; the scene group maps LPS to three.js axes:
//   X = patient left (x), Y = superior (z), Z = anterior (-y): a rotation, so mm stay mm.
(function () {
  "use strict";
  const state = { ready: false, error: null, renderCount: 0, models: [], measure: { points: [], distance: null } };
  window.medreconViewer = state;
  const data = JSON.parse(document.getElementById("medrecon-data").textContent);

  function b64(s, Type) {
    const bin = atob(s);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }
  const U = data.units === "mm" ? " mm" : " (units: " + data.units + ")";
  if (data.units !== "mm" && document.getElementById("help")) {
    document.getElementById("help").textContent = "Drag: rotate. Wheel: zoom. Right-drag: pan. Sizes and distances" +
      U + ": no scale was given, so there is no scale bar.";
  }
  const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1));
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  };

  const view = document.getElementById("view");
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  } catch (err) {
    state.error = "WebGL is not available in this browser: " + err;
    document.getElementById("status").textContent = state.error;
    return;
  }
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.setSize(view.clientWidth, view.clientHeight);
  renderer.setClearColor(0x1a1c20, 1);
  view.appendChild(renderer.domElement);

  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(30, view.clientWidth / Math.max(1, view.clientHeight), 0.1, 1e6);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x404048, 1.2));
  const headLight = new THREE.DirectionalLight(0xffffff, 1.6);
  camera.add(headLight);
  headLight.position.set(0.3, 0.5, 1);
  scene.add(camera);

  const group = new THREE.Group();
  group.matrixAutoUpdate = false;
  group.matrix.set(1, 0, 0, 0, 0, 0, 1, 0, 0, -1, 0, 0, 0, 0, 0, 1);  // LPS -> display
  scene.add(group);

  const list = document.getElementById("structures");
  data.models.forEach(function (m, idx) {
    const geom = new THREE.BufferGeometry();
    geom.setAttribute("position", new THREE.BufferAttribute(b64(m.positions, Float32Array), 3));
    geom.setIndex(new THREE.BufferAttribute(b64(m.indices, Uint32Array), 1));
    if (m.colors) {  // per-vertex sRGB bytes (e.g. a photo texture sampled at the vertices) -> linear
      const c8 = b64(m.colors, Uint8Array), cl = new Float32Array(c8.length);
      for (let i = 0; i < c8.length; i++) { const v = c8[i] / 255; cl[i] = v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }
      geom.setAttribute("color", new THREE.BufferAttribute(cl, 3));
    }
    geom.computeVertexNormals();
    geom.computeBoundingBox();
    const color = m.colors ? new THREE.Color(1, 1, 1) : new THREE.Color().setRGB(m.color[0], m.color[1], m.color[2], THREE.SRGBColorSpace);
    const mat = new THREE.MeshPhongMaterial({ color: color, shininess: 25, side: THREE.DoubleSide, vertexColors: !!m.colors });
    const mesh = new THREE.Mesh(geom, mat);
    mesh.name = m.name;
    group.add(mesh);
    const row = el("label", { "class": "row", "data-structure": m.name });
    const cb = el("input", { type: "checkbox", "data-index": String(idx) });
    cb.checked = true;
    const sw = el("span", { "class": "swatch" });
    sw.style.background = "rgb(" + m.color.map((c) => Math.round(c * 255)).join(",") + ")";
    const b = m.bounds;
    row.appendChild(cb);
    row.appendChild(sw);
    row.appendChild(el("span", { "class": "name" }, m.name));
    row.appendChild(el("span", { "class": "dims" },
      fmt(b[1][0] - b[0][0]) + " x " + fmt(b[1][1] - b[0][1]) + " x " + fmt(b[1][2] - b[0][2])));
    list.appendChild(row);
    cb.addEventListener("change", function () { setVisible(m.name, cb.checked); });
    state.models.push({ name: m.name, label: m.label, color: m.color, bounds: m.bounds, mesh: mesh, checkbox: cb });
  });

  function visibleBounds() {
    let lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity], any = false;
    state.models.forEach(function (m) {
      if (!m.mesh.visible) return;
      any = true;
      for (let a = 0; a < 3; a++) { lo[a] = Math.min(lo[a], m.bounds[0][a]); hi[a] = Math.max(hi[a], m.bounds[1][a]); }
    });
    return any ? [lo, hi] : null;
  }
  function updateSize() {
    const b = visibleBounds();
    document.getElementById("size").textContent = b ?
      "Visible: " + fmt(b[1][0] - b[0][0]) + " (L-R) x " + fmt(b[1][1] - b[0][1]) + " (A-P) x " +
      fmt(b[1][2] - b[0][2]) + " (S-I)" + U : "Nothing visible";
  }
  // orientation letters at the view's edges and a scale bar (mm at the centre of rotation)
  const LETTERS = [["L", "R"], ["P", "A"], ["S", "I"]];
  function letterFor(vLps) {
    let ax = 0;
    for (let a = 1; a < 3; a++) if (Math.abs(vLps[a]) > Math.abs(vLps[ax])) ax = a;
    return LETTERS[ax][vLps[ax] >= 0 ? 0 : 1];
  }
  function overlay() {
    if (typeof controls === "undefined") return;
    camera.updateMatrixWorld();
    const e = camera.matrixWorld.elements;  // columns: camera right, up, back (display axes)
    const toLps = (x, y, z) => [x, -z, y];  // display -> LPS (inverse of toDisplay)
    const right = toLps(e[0], e[1], e[2]);
    const up = toLps(e[4], e[5], e[6]);
    const neg = (v) => v.map((x) => -x);
    document.getElementById("o-right").textContent = letterFor(right);
    document.getElementById("o-left").textContent = letterFor(neg(right));
    document.getElementById("o-top").textContent = letterFor(up);
    document.getElementById("o-bottom").textContent = letterFor(neg(up));
    const dist = camera.position.distanceTo(controls.target);
    const mmPerPx = (2 * dist * Math.tan((camera.fov * Math.PI) / 360)) / Math.max(1, view.clientHeight);
    const nice = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
    let mm = nice[0];
    for (const n of nice) if (n / mmPerPx <= 140) mm = n;
    if (data.units !== "mm") { document.getElementById("scalebar").style.display = "none"; return; }
    document.getElementById("sb-label").textContent = mm + " mm";
    document.getElementById("sb-bar").style.width = Math.round(mm / mmPerPx) + "px";
    state.overlay = { right: letterFor(right), top: letterFor(up), scaleMm: mm, scalePx: Math.round(mm / mmPerPx) };
  }
  function render() {
    renderer.render(scene, camera);
    overlay();
    state.renderCount += 1;
  }
  function setVisible(name, on) {
    const m = state.models.find((x) => x.name === name);
    if (!m) return false;
    m.mesh.visible = !!on;
    m.checkbox.checked = !!on;
    updateSize();
    render();
    return true;
  }
  state.setVisible = setVisible;
  state.isVisible = (name) => { const m = state.models.find((x) => x.name === name); return m ? m.mesh.visible : null; };
  state.visibleBounds = visibleBounds;
  state.names = state.models.map((m) => m.name);

  // camera placement: views given as a direction (LPS) from the centre to the camera and an up vector
  const all = data.bounds;
  const centreLps = [0, 1, 2].map((a) => (all[0][a] + all[1][a]) / 2);
  const radius = Math.max(1, 0.5 * Math.hypot(all[1][0] - all[0][0], all[1][1] - all[0][1], all[1][2] - all[0][2]));
  const toDisplay = (v) => new THREE.Vector3(v[0], v[2], -v[1]);
  const controls = new THREE.OrbitControls(camera, renderer.domElement);
  controls.enableDamping = false;
  controls.addEventListener("change", render);
  function setView(dirLps, upLps) {
    const c = toDisplay(centreLps);
    const dist = radius / Math.sin((camera.fov * Math.PI) / 360) * 1.05;
    camera.position.copy(c).add(toDisplay(dirLps).normalize().multiplyScalar(dist));
    camera.up.copy(toDisplay(upLps));
    camera.near = Math.max(0.01, dist / 1000);
    camera.far = dist * 10;
    camera.updateProjectionMatrix();
    controls.target.copy(c);
    controls.update();
    render();
  }
  const VIEWS = {
    oblique: [[0.55, -1, 0.4], [0, 0, 1]],  // anterior, from the patient's left and above
    front: [[0, -1, 0], [0, 0, 1]], back: [[0, 1, 0], [0, 0, 1]], left: [[1, 0, 0], [0, 0, 1]],
    right: [[-1, 0, 0], [0, 0, 1]], top: [[0, 0, 1], [0, -1, 0]], bottom: [[0, 0, -1], [0, 1, 0]],
  };
  state.setView = (name) => { const v = VIEWS[name]; if (v) setView(v[0], v[1]); return !!v; };
  document.querySelectorAll("button[data-view]").forEach(function (btn) {
    btn.addEventListener("click", function () { state.setView(btn.getAttribute("data-view")); });
  });
  document.getElementById("all-on").addEventListener("click", () => state.models.forEach((m) => setVisible(m.name, true)));
  document.getElementById("all-off").addEventListener("click", () => state.models.forEach((m) => setVisible(m.name, false)));

  // two-point distance: click "Measure", then click two surface points
  const ray = new THREE.Raycaster();
  const measureGroup = new THREE.Group();
  scene.add(measureGroup);
  let measuring = false;
  const mBtn = document.getElementById("measure");
  const mOut = document.getElementById("distance");
  function clearMeasure() {
    while (measureGroup.children.length) measureGroup.remove(measureGroup.children[0]);
    state.measure = { points: [], distance: null };
  }
  mBtn.addEventListener("click", function () {
    measuring = !measuring;
    mBtn.classList.toggle("on", measuring);
    clearMeasure();
    mOut.textContent = measuring ? "Click two points on the surface" : "";
    render();
  });
  function pickAt(clientX, clientY) {
    const r = renderer.domElement.getBoundingClientRect();
    const p = new THREE.Vector2(((clientX - r.left) / r.width) * 2 - 1, -((clientY - r.top) / r.height) * 2 + 1);
    ray.setFromCamera(p, camera);
    const hits = ray.intersectObjects(state.models.filter((m) => m.mesh.visible).map((m) => m.mesh), false);
    if (!hits.length) return null;
    const d = hits[0].point;  // display axes, mm
    return { lps: [d.x, -d.z, d.y], display: d, name: hits[0].object.name };
  }
  state.pickAt = pickAt;
  let down = null;
  renderer.domElement.addEventListener("pointerdown", (e) => { down = [e.clientX, e.clientY]; });
  renderer.domElement.addEventListener("pointerup", function (e) {
    if (!measuring || !down || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 4) return;
    const hit = pickAt(e.clientX, e.clientY);
    if (!hit) return;
    if (state.measure.points.length >= 2) clearMeasure();
    state.measure.points.push(hit.lps);
    const dot = new THREE.Mesh(new THREE.SphereGeometry(radius / 120, 12, 8), new THREE.MeshBasicMaterial({ color: 0xffee33 }));
    dot.position.copy(hit.display);
    measureGroup.add(dot);
    if (state.measure.points.length === 2) {
      const [a, b] = state.measure.points;
      const dist = Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
      state.measure.distance = dist;
      const g = new THREE.BufferGeometry().setFromPoints([measureGroup.children[0].position, hit.display]);
      measureGroup.add(new THREE.Line(g, new THREE.LineBasicMaterial({ color: 0xffee33 })));
      mOut.textContent = "Distance: " + dist.toFixed(1) + U;
    } else {
      mOut.textContent = "Click the second point";
    }
    render();
  });

  window.addEventListener("resize", function () {
    renderer.setSize(view.clientWidth, view.clientHeight);
    camera.aspect = view.clientWidth / Math.max(1, view.clientHeight);
    camera.updateProjectionMatrix();
    render();
  });
  state.render = render;
  updateSize();
  state.setView("oblique");
  state.ready = true;
  document.body.setAttribute("data-ready", "1");
})();
