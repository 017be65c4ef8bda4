// The global map's geography: the shipped countries (world.json, drawn with d3-geo's Natural
// Earth 1 projection at build time: web/vendor.mjs) and the same projection here, to place a
// region or a country centroid by longitude and latitude on those paths.

let world = null;

// The countries and the projection's constants, fetched once per page load.
export function loadWorld() {
  if (!world) {
    world = fetch("/ui/world.json", { credentials: "same-origin" }).then((res) => {
      if (!res.ok) throw new Error(`the map's countries did not load (HTTP ${res.status})`);
      return res.json();
    });
    world.catch(() => { world = null; });
  }
  return world;
}

// d3-geo's geoNaturalEarth1Raw: longitude, latitude (radians) -> unit plane coordinates.
export function naturalEarth1Raw(lambda, phi) {
  const phi2 = phi * phi, phi4 = phi2 * phi2;
  return [
    lambda * (0.8707 - 0.131979 * phi2 + phi4 * (-0.013791 + phi4 * (0.003971 * phi2 - 0.001529 * phi4))),
    phi * (1.007226 + phi2 * (0.015085 + phi4 * (-0.044475 + 0.028874 * phi2 - 0.005916 * phi4))),
  ];
}

// [longitude, latitude] in degrees -> [x, y] on the map of `projection` ({scale, tx, ty}).
export function project(projection, lon, lat) {
  const rad = Math.PI / 180;
  const [x, y] = naturalEarth1Raw(lon * rad, lat * rad);
  return [projection.tx + projection.scale * x, projection.ty - projection.scale * y];
}

// The state of an edge node: live (heartbeat fresh and healthy: GeoDNS answers with it),
// stale (seen within the last minute but not live), offline.
export function nodeState(node) {
  if (node.live) return "live";
  return node.status === "online" ? "stale" : "offline";
}

// A region's state from its nodes' states: up, degraded, down, or empty (no node).
export function regionState(nodes) {
  if (!nodes.length) return "empty";
  const live = nodes.filter((n) => nodeState(n) === "live").length;
  if (live === nodes.length) return "up";
  return live ? "degraded" : "down";
}

export const STATE_WORDS = {
  live: "live", stale: "stale", offline: "offline",
  up: "up", degraded: "degraded", down: "down", empty: "no edge node",
};

// Latency classes for the heatmap (whole-request p50, ms).
export const LATENCY_CLASSES = [
  { max: 20, key: "l1", label: "under 20 ms" },
  { max: 50, key: "l2", label: "20–50 ms" },
  { max: 150, key: "l3", label: "50–150 ms" },
  { max: Infinity, key: "l4", label: "over 150 ms" },
];
export function latencyClass(ms) {
  if (ms === null || ms === undefined) return null;
  return LATENCY_CLASSES.find((c) => ms <= c.max).key;
}

// A flow's curve from a country's centroid to a region (a quadratic arc bending north).
export function arc([x1, y1], [x2, y2]) {
  const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
  const d = Math.hypot(x2 - x1, y2 - y1);
  return `M${x1.toFixed(1)},${y1.toFixed(1)} Q${mx.toFixed(1)},${(my - d * 0.25).toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`;
}
