// Copy what the dashboard takes from npm into the Python package (src/edgeplane/web/), so that
// running Edgeplane needs neither Node nor the network. The output is committed; `--check`
// fails when it differs from what this script would write (run by the tests).
//
//   vendor/preact.js, vendor/hooks.js, vendor/htm.js   the UI library (ES modules)
//   world.json    countries (Natural Earth 1:110m, world-atlas) as SVG paths in the Natural
//                 Earth projection, keyed by ISO 3166 alpha-2, with the projection's constants
//                 so that the page can place points by longitude and latitude.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { feature } from "topojson-client";
import { geoNaturalEarth1, geoPath } from "d3-geo";
import countries from "i18n-iso-countries";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "edgeplane", "web");
const mod = (p) => join(here, "node_modules", p);
const check = process.argv.includes("--check");

const files = {};
const read = (p) => readFileSync(mod(p), "utf8");
files["vendor/preact.js"] = read("preact/dist/preact.module.js").replace(/\n\/\/# sourceMappingURL=.*$/m, "");
files["vendor/hooks.js"] = read("preact/hooks/dist/hooks.module.js")
  .replace('from"preact"', 'from"./preact.js"')
  .replace(/\n\/\/# sourceMappingURL=.*$/m, "");
files["vendor/htm.js"] = read("htm/dist/htm.module.js");

// The map: 960 x 500, Natural Earth 1, scale and translation fixed (written into the file).
const WIDTH = 960, HEIGHT = 500, SCALE = 175, TX = WIDTH / 2, TY = HEIGHT / 2 + 10;
const projection = geoNaturalEarth1().scale(SCALE).translate([TX, TY]).precision(0.2);
const path = geoPath(projection).digits(1);
const topo = JSON.parse(read("world-atlas/countries-110m.json"));
const shapes = feature(topo, topo.objects.countries).features;
const world = [];
for (const f of shapes) {
  const numeric = f.id;
  const a2 = numeric ? countries.numericToAlpha2(numeric) : undefined;
  const d = path(f);
  if (!d) continue;
  world.push({ code: a2 || "", name: f.properties.name, d });
}
world.sort((a, b) => (a.code + a.name).localeCompare(b.code + b.name));
const doc = {
  source: "Natural Earth 1:110m countries (public domain), via world-atlas 2.0.2",
  projection: { name: "naturalEarth1", width: WIDTH, height: HEIGHT, scale: SCALE, tx: TX, ty: TY },
  countries: world,
};
files["world.json"] = JSON.stringify(doc) + "\n";

let stale = [];
for (const [name, text] of Object.entries(files)) {
  const target = join(out, name);
  const current = existsSync(target) ? readFileSync(target, "utf8") : null;
  if (current === text) continue;
  stale.push(name);
  if (!check) {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text);
  }
}
if (check && stale.length) {
  console.error(`stale: ${stale.join(", ")} (run: node web/vendor.mjs)`);
  process.exit(1);
}
console.log(check ? "vendored files are up to date" : `wrote ${stale.length ? stale.join(", ") : "nothing (up to date)"}`);
