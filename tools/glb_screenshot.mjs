// Renders a .glb with three.js's GLTFLoader in headless Chromium and saves a screenshot: a
// check that a common glTF viewer library loads and draws our meshes (aigc-image's mesh
// module). Not used by CI.
//
//   mkdir -p /tmp/viewer && cd /tmp/viewer && npm install three playwright-core gltf-validator
//   apt-get install -y chromium
//   node /path/to/tools/glb_screenshot.mjs terrain.glb shot.png
//
// Modules resolve from the current directory (where npm installed them). Prints what the
// loader found (meshes, vertices, triangles, bounds) as JSON, and first, when gltf-validator
// (the Khronos glTF validator) is installed, its counts of errors, warnings, infos and hints.
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.cwd(), "noop.js"));
const { chromium } = require("playwright-core");
const threeDir = path.join(process.cwd(), "node_modules", "three");
const [glb, out = "glb.png"] = process.argv.slice(2);
if (!glb) {
  console.error("usage: node glb_screenshot.mjs FILE.glb [OUT.png]");
  process.exit(2);
}

const page = `<!doctype html><html><body style="margin:0;background:#dde6ee">
<script type="importmap">{"imports":{"three":"/three/build/three.module.js",
"three/addons/":"/three/examples/jsm/"}}</script>
<script type="module">
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setSize(1024, 768);
document.body.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0xdde6ee);
scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 1.2));
const sun = new THREE.DirectionalLight(0xffffff, 2.0);
sun.position.set(-1, 1.2, -1);
scene.add(sun);
new GLTFLoader().load("/model.glb", (gltf) => {
  scene.add(gltf.scene);
  const box = new THREE.Box3().setFromObject(gltf.scene);
  const size = box.getSize(new THREE.Vector3()), centre = box.getCenter(new THREE.Vector3());
  // Far enough that the bounding sphere fits the view, from the south-east and above.
  const radius = 0.5 * size.length();
  const distance = (0.7 * radius) / Math.sin(THREE.MathUtils.degToRad(20));
  const camera = new THREE.PerspectiveCamera(40, 1024 / 768, distance / 100, distance * 10);
  const view = new THREE.Vector3(0.35, 0.8, 1.0).normalize().multiplyScalar(distance);
  camera.position.copy(centre).add(view);
  camera.lookAt(centre);
  renderer.render(scene, camera);
  let vertices = 0, triangles = 0, meshes = 0, colours = false;
  gltf.scene.traverse((o) => {
    if (!o.isMesh) return;
    meshes += 1;
    vertices += o.geometry.attributes.position.count;
    triangles += (o.geometry.index ? o.geometry.index.count : o.geometry.attributes.position.count) / 3;
    colours = colours || (!!o.geometry.attributes.color && o.material.vertexColors);
  });
  window.__result = { meshes, vertices, triangles, colours, min: box.min.toArray(), max: box.max.toArray() };
}, undefined, (e) => { window.__result = { error: String(e) }; });
</script></body></html>`;

try {
  const validator = require("gltf-validator");
  const report = await validator.validateBytes(new Uint8Array(readFileSync(glb)));
  const { numErrors, numWarnings, numInfos, numHints, messages } = report.issues;
  console.log(JSON.stringify({ validator: report.validatorVersion, numErrors, numWarnings, numInfos, numHints }));
  for (const m of messages.slice(0, 20)) console.error("validator:", m.code, m.message, m.pointer || "");
  if (numErrors > 0) process.exitCode = 1;
} catch (e) {
  if (e.code !== "MODULE_NOT_FOUND") throw e;
}

const types = { ".js": "text/javascript", ".glb": "model/gltf-binary", ".html": "text/html" };
const server = createServer((req, res) => {
  const url = decodeURIComponent(req.url.split("?")[0]);
  let file = null;
  if (url === "/") return res.writeHead(200, { "content-type": "text/html" }).end(page);
  if (url === "/model.glb") file = path.resolve(glb);
  else if (url.startsWith("/three/")) file = path.join(threeDir, path.normalize(url.slice(7)));
  try {
    const body = readFileSync(file);
    res.writeHead(200, { "content-type": types[path.extname(file)] || "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
}).listen(0, "127.0.0.1");
await new Promise((r) => server.once("listening", r));

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const tab = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  tab.on("console", (m) => console.error("page:", m.text()));
  tab.on("pageerror", (e) => console.error("page error:", e.message));
  await tab.goto(`http://127.0.0.1:${server.address().port}/`);
  await tab.waitForFunction(() => window.__result, null, { timeout: 120000 });
  const result = await tab.evaluate(() => window.__result);
  await tab.screenshot({ path: out });
  console.log(JSON.stringify(result));
  if (result.error) process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
