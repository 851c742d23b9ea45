export {
  WebGLRenderer, Scene, PerspectiveCamera, OrthographicCamera, BufferGeometry, BufferAttribute,
  Mesh, MeshPhongMaterial, MeshBasicMaterial, LineBasicMaterial, AmbientLight, DirectionalLight,
  HemisphereLight, Color, Vector3, Vector2, Box3, Sphere, Group, Raycaster, LineSegments, Line,
  SphereGeometry, Points, PointsMaterial, DoubleSide, FrontSide, Matrix4, AxesHelper, GridHelper,
  SRGBColorSpace
} from 'three';
export { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
