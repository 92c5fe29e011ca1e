// A small map drawn here, in SVG: the jobs and the crew's own position, where they lie from
// each other (Web Mercator, fitted to the points). No tile server unless the deployment names
// one (config "tiles": a {z}/{x}/{y} URL template); without it, a grid and a scale bar.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 360;
const HEIGHT = 240;
const PAD = 28;
const TILE = 256;
const MAX_SCALE = 2 ** 17; // about a street's width across the map

function world(lat, long) {
  const sin = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return { x: ((long + 180) / 360) * TILE,
           y: (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI)) * TILE };
}

function node(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

/** Metres between two points (haversine): "a 1.2 km" in the list. */
export function distance(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLong = (b.long - a.long) * rad;
  const h = Math.sin(dLat / 2) ** 2
    + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLong / 2) ** 2;
  return 12742000 * Math.asin(Math.sqrt(h));
}

function fit(points) {
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys),
                                    Math.max(...ys)];
  const scale = Math.min(MAX_SCALE, (WIDTH - 2 * PAD) / (maxX - minX || 1e-9),
                         (HEIGHT - 2 * PAD) / (maxY - minY || 1e-9));
  const centre = { x: (minX + maxX) / 2, y: (minY + maxY) / 2 };
  return { scale, project: (p) => ({ x: WIDTH / 2 + (p.x - centre.x) * scale,
                                     y: HEIGHT / 2 + (p.y - centre.y) * scale }),
           origin: { x: centre.x - WIDTH / 2 / scale, y: centre.y - HEIGHT / 2 / scale } };
}

function drawTiles(svg, view, tiles) {
  const zoom = Math.max(0, Math.min(19, Math.floor(Math.log2(view.scale))));
  const count = 2 ** zoom;
  const side = (TILE * view.scale) / count; // a tile's side on this map
  const index = (units) => Math.floor((units * count) / TILE);
  const [fromX, toX] = [index(view.origin.x), index(view.origin.x + WIDTH / view.scale)];
  const [fromY, toY] = [index(view.origin.y), index(view.origin.y + HEIGHT / view.scale)];
  for (let tx = fromX; tx <= Math.min(toX, fromX + 8); tx += 1) {
    for (let ty = Math.max(0, fromY); ty <= Math.min(toY, fromY + 8, count - 1); ty += 1) {
      const corner = view.project({ x: (tx * TILE) / count, y: (ty * TILE) / count });
      const href = tiles.url.replace("{z}", zoom).replace("{x}", ((tx % count) + count) % count)
        .replace("{y}", ty).replace("{s}", "a");
      node("image", { href, x: corner.x, y: corner.y, width: side, height: side }, svg);
    }
  }
  if (tiles.attribution) {
    node("text", { x: WIDTH - 4, y: HEIGHT - 4, class: "atribucion", "text-anchor": "end" }, svg)
      .textContent = tiles.attribution;
  }
}

function drawGrid(svg, view, around) {
  for (let x = 0; x <= WIDTH; x += 40) {
    node("line", { x1: x, y1: 0, x2: x, y2: HEIGHT, class: "reticula" }, svg);
  }
  for (let y = 0; y <= HEIGHT; y += 40) {
    node("line", { x1: 0, y1: y, x2: WIDTH, y2: y, class: "reticula" }, svg);
  }
  const equator = 40075016.686; // metres
  const metresPerPixel = (equator * Math.cos((around.lat * Math.PI) / 180)) / TILE / view.scale;
  const nice = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]
    .find((metres) => metres / metresPerPixel >= 50) || 100000;
  const length = nice / metresPerPixel;
  node("line", { x1: 8, y1: HEIGHT - 10, x2: 8 + length, y2: HEIGHT - 10, class: "escala" }, svg);
  node("text", { x: 8, y: HEIGHT - 14, class: "escala-texto" }, svg).textContent =
    nice >= 1000 ? `${nice / 1000} km` : `${nice} m`;
}

/** Draw `jobs` (each {folio, location: {lat, long}, shown}) and `me` ({lat, long} or null);
 * a point pressed calls pick(folio). */
export function drawMap(svg, jobs, me, { tiles, pick, selected }) {
  svg.replaceChildren();
  const placed = jobs.filter((job) => job.location && Number.isFinite(job.location.lat)
                                      && Number.isFinite(job.location.long));
  const all = [...placed.map((job) => job.location), ...(me ? [me] : [])];
  node("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, class: "fondo" }, svg);
  if (!all.length) {
    node("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "vacio" }, svg)
      .textContent = "Sin ubicaciones que mostrar";
    return;
  }
  const view = fit(all.map((p) => world(p.lat, p.long)));
  if (tiles && tiles.url) drawTiles(svg, view, tiles);
  else drawGrid(svg, view, all[0]);
  for (const job of placed) {
    const at = view.project(world(job.location.lat, job.location.long));
    const point = node("g", { class: `punto ${job.folio === selected ? "elegido" : ""}`,
                              "data-folio": job.folio, tabindex: "0", role: "button" }, svg);
    node("circle", { cx: at.x, cy: at.y, r: 9, class: `paso-${job.shown}` }, point);
    const left = at.x > WIDTH - 60; // near the right edge: the label goes on the left
    const name = node("text", { x: left ? at.x - 12 : at.x + 12, y: at.y + 4,
                                "text-anchor": left ? "end" : "start" }, point);
    name.textContent = job.folio.slice(-6);
    node("title", {}, point).textContent = `${job.folio}: ${job.service_name || ""}`;
    point.addEventListener("click", () => pick(job.folio));
    point.addEventListener("keydown", (event) => { if (event.key === "Enter") pick(job.folio); });
  }
  if (me) {
    const at = view.project(world(me.lat, me.long));
    node("circle", { id: "mi-posicion", cx: at.x, cy: at.y, r: 7, class: "yo" }, svg);
  }
}
