// The global map's drawing: countries (shaded by latency when the heatmap is on), flows from
// client countries to the regions that served them, and a marker per region and per edge node,
// each a link that selects it (#/map/<region>[/<node id>]) and is reachable with the keyboard.
import { html, useState, useEffect } from "../ui.js";
import { loadWorld, project, nodeState, regionState, STATE_WORDS, latencyClass, arc, LATENCY_CLASSES } from "./map_geo.js";

function useWorld() {
  const [state, setState] = useState({ world: null, error: null });
  useEffect(() => {
    let alive = true;
    loadWorld().then(
      (world) => alive && setState({ world, error: null }),
      (error) => alive && setState({ world: null, error }),
    );
    return () => { alive = false; };
  }, []);
  return state;
}

export { useWorld };

// Where each node's marker sits: on a small ring around its region's point.
function nodeSpots(center, count) {
  if (count === 1) return [[center[0], center[1] - 11]];
  return Array.from({ length: count }, (_, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / count;
    return [center[0] + 12 * Math.cos(a), center[1] + 12 * Math.sin(a)];
  });
}

// regions: [{code, name, latitude, longitude, nodes: [EdgeNode], traffic, ...}]
export function WorldMap({ world, regions, countries, layers, selected, selectedNode }) {
  const proj = world.projection;
  const at = {};
  for (const r of regions) at[r.code] = project(proj, r.longitude, r.latitude);
  const centroid = {};
  for (const c of countries || []) centroid[c.code] = project(proj, c.longitude, c.latitude);

  // Country shading: the request-weighted p50 of the regions that served the country.
  const shade = {};
  if (layers.latency) {
    const sums = {};
    for (const r of regions) {
      if (!r.traffic || r.traffic.p50_ms === null) continue;
      for (const [code, n] of Object.entries(r.traffic.countries || {})) {
        const s = (sums[code] = sums[code] || [0, 0]);
        s[0] += n * r.traffic.p50_ms;
        s[1] += n;
      }
    }
    for (const [code, [w, n]] of Object.entries(sums)) if (n) shade[code] = latencyClass(w / n);
  }
  const flows = [];
  if (layers.flows) {
    for (const r of regions) {
      for (const [code, n] of Object.entries((r.traffic && r.traffic.countries) || {})) {
        if (centroid[code]) flows.push({ from: code, to: r.code, requests: n });
      }
    }
  }
  const maxFlow = Math.max(1, ...flows.map((f) => f.requests));

  return html`<svg class="world" viewBox=${`0 0 ${proj.width} ${proj.height}`} role="group" aria-label="World map of the edge regions and nodes">
    <g class="countries" aria-hidden="true">
      ${world.countries.map(
        (c) => html`<path d=${c.d} class=${"country" + (shade[c.code] ? ` heat-${shade[c.code]}` : "")} data-code=${c.code || undefined}><title>${c.name}</title></path>`,
      )}
    </g>
    <g class="flows" aria-hidden="true">
      ${flows.map(
        (f) => html`<path class="flow" d=${arc(centroid[f.from], at[f.to])} data-from=${f.from} data-to=${f.to}
          stroke-width=${(1 + 5 * Math.sqrt(f.requests / maxFlow)).toFixed(2)}><title>${`${f.from} → ${f.to}: ${f.requests} requests`}</title></path>`,
      )}
    </g>
    ${layers.latency &&
    html`<g class="halos" aria-hidden="true">
      ${regions.filter((r) => r.traffic && r.traffic.p50_ms !== null).map(
        (r) => html`<circle class=${`halo heat-${latencyClass(r.traffic.p50_ms)}`} cx=${at[r.code][0]} cy=${at[r.code][1]} r="16" />`,
      )}
    </g>`}
    <g class="markers">
      ${regions.map((r) => {
        const [x, y] = at[r.code];
        const state = regionState(r.nodes);
        const label = `Region ${r.code}, ${r.name}: ${STATE_WORDS[state]}, ${r.nodes.length} edge node${r.nodes.length === 1 ? "" : "s"}`;
        return html`<a href=${`#/map/${encodeURIComponent(r.code)}`} class=${"marker region state-" + state + (selected === r.code ? " selected" : "")}
            aria-label=${label} aria-current=${selected === r.code && !selectedNode ? "true" : undefined} data-region=${r.code} data-state=${state}>
          <title>${label}</title>
          <circle cx=${x} cy=${y} r=${r.nodes.length ? 6 : 3.5} />
        </a>`;
      })}
      ${regions.flatMap((r) => {
        const spots = nodeSpots(at[r.code], r.nodes.length);
        return r.nodes.map((n, i) => {
          const state = nodeState(n);
          const label = `Edge node ${n.name} in ${r.code}: ${STATE_WORDS[state]}`;
          return html`<a href=${`#/map/${encodeURIComponent(r.code)}/${encodeURIComponent(n.id)}`}
              class=${"marker node state-" + state + (selectedNode === n.id ? " selected" : "")}
              aria-label=${label} aria-current=${selectedNode === n.id ? "true" : undefined}
              data-node=${n.name} data-node-id=${n.id} data-state=${state}>
            <title>${label}</title>
            <circle cx=${spots[i][0]} cy=${spots[i][1]} r="4.5" />
          </a>`;
        });
      })}
    </g>
  </svg>`;
}

export function Legend({ layers }) {
  const item = (cls, text) => html`<li><svg class="legend-mark" viewBox="0 0 16 16" aria-hidden="true"><circle class=${cls} cx="8" cy="8" r="6" /></svg>${text}</li>`;
  return html`<div class="map-legend">
    <h3>Legend</h3>
    <ul aria-label="Marker colours">
      ${item("m-live", "Region up / node live")}
      ${item("m-degraded", "Region degraded (some nodes not live)")}
      ${item("m-down", "Region down / node stale or offline")}
      ${item("m-empty", "Region without an edge node")}
    </ul>
    ${layers.latency &&
    html`<ul aria-label="Latency (p50 of whole requests)">
      ${LATENCY_CLASSES.map((c) => html`<li><span class=${`swatch heat-${c.key}`}></span>p50 ${c.label}</li>`)}
    </ul>`}
    ${layers.flows && html`<p class="hint">Arcs: requests from a client country to the region that served them; wider is more.</p>`}
  </div>`;
}
