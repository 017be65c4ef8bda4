// Global Deployment Map: the edge regions and nodes on a world map, coloured by state and
// refreshed every 2 s; a region's or node's details; latency heatmap, traffic flows from client
// countries, cost per region; the edge deployments (versions, live rollout per region, deploy,
// activate, rollback); and a table saying in text what the map shows.
import {
  html, useState, useApi, Page, Card, ErrorBox, Loading, Notice, Checkbox, Table, Badge, Button,
  fmtAgo, fmtMs, fmtMoney, fmtNum, fmtTime, fmtPct, fmtBytes,
} from "../ui.js";
import { nodeState, regionState, STATE_WORDS } from "./map_geo.js";
import { WorldMap, Legend, useWorld } from "./map_view.js";
import { Deployments } from "./map_deploy.js";

const POLL_MS = 2000;
const STATE_BADGE = { live: "live", stale: "stale", offline: "offline", up: "up", degraded: "degraded", down: "down", empty: "none" };

function useMapData() {
  const regions = useApi("infrastructure/regions", { project: false });
  const nodes = useApi("edge/nodes", { every: POLL_MS, project: false });
  const locations = useApi("infrastructure/edge/locations", { every: POLL_MS });
  const traffic = useApi("metrics/regions", { query: { since: "1h" }, every: 10000 });
  const costs = useApi("costs", { every: 60000 });
  const dcs = useApi("infrastructure/datacenters", { query: { limit: 500 } });
  const versions = useApi("infrastructure/edge/deployments", { every: POLL_MS });
  return { regions, nodes, locations, traffic, costs, dcs, versions };
}

// Everything the map and the table show, per region.
function combine(d) {
  if (!d.regions.data || !d.nodes.data) return null;
  const byVersion = {};
  for (const v of d.versions.data || []) byVersion[v.id] = v.version;
  const traffic = {};
  for (const t of (d.traffic.data && d.traffic.data.regions) || []) traffic[t.region] = t;
  const locs = {};
  for (const l of d.locations.data || []) locs[l.region] = l;
  const cost = (d.costs.data && d.costs.data.by_region) || {};
  const dcs = (d.dcs.data && d.dcs.data.items) || [];
  return d.regions.data.map((r) => ({
    ...r,
    nodes: d.nodes.data.filter((n) => n.region === r.code),
    traffic: traffic[r.code] || null,
    cost: cost[r.code] || null,
    datacenters: dcs.filter((dc) => dc.location === r.code),
    versions: ((locs[r.code] && locs[r.code].deployments) || []).map((id) => byVersion[id]).filter((v) => v !== undefined),
    load: locs[r.code] ? locs[r.code].load : 0,
  }));
}

function nodeRows(nodes) {
  return html`<${Table}
    caption="Edge nodes"
    rows=${nodes}
    rowKey=${(n) => n.id}
    empty="No edge node in this region."
    columns=${[
      { key: "name", label: "Node", render: (n) => html`<a href=${`#/map/${encodeURIComponent(n.region)}/${encodeURIComponent(n.id)}`}>${n.name}</a>` },
      { key: "state", label: "State", render: (n) => html`<${Badge} state=${STATE_BADGE[nodeState(n)]}>${nodeState(n)}<//>` },
      { key: "heartbeat_at", label: "Last heartbeat", render: (n) => html`<span title=${fmtTime(n.heartbeat_at)}>${fmtAgo(n.heartbeat_at)}</span>` },
      { key: "applied_revision", label: "Revision", class: "num", render: (n) => `${n.applied_revision ?? "—"}${n.in_sync ? "" : ` (wants ${n.desired_revision})`}` },
      { key: "address", label: "Address", render: (n) => n.address ? `${n.address}${n.http_port ? `:${n.http_port}` : ""}` : "—" },
    ]}
  />`;
}

function Details({ region, nodeId, onToggle, chosen }) {
  if (!region) {
    return html`<${Card} title="Details" id="map-details">
      <p class="muted">Select a region or an edge node on the map, or in the table below.</p>
    <//>`;
  }
  const node = nodeId ? region.nodes.find((n) => n.id === nodeId) : null;
  const state = regionState(region.nodes);
  const t = region.traffic;
  const top = t ? Object.entries(t.countries || {}) : [];
  return html`<${Card} title=${node ? `Edge node ${node.name}` : `Region ${region.code}`} id="map-details">
    ${nodeId && !node && html`<${Notice} kind="warn">Edge node ${nodeId} is not in ${region.code} (any more).<//>`}
    ${node && html`<dl class="facts">
      <dt>State</dt><dd><${Badge} state=${STATE_BADGE[nodeState(node)]}>${nodeState(node)}<//></dd>
      <dt>Region</dt><dd><a href=${`#/map/${encodeURIComponent(region.code)}`}>${region.code}</a></dd>
      <dt>Last heartbeat</dt><dd>${fmtAgo(node.heartbeat_at)} <span class="muted">(${fmtTime(node.heartbeat_at)})</span></dd>
      <dt>Applied revision</dt><dd>${node.applied_revision ?? "none"} ${node.in_sync ? html`<${Badge} state="ok">in sync<//>` : html`<${Badge} state="pending">wants ${node.desired_revision}<//>`}</dd>
      <dt>Address</dt><dd>${node.address || "—"}</dd>
      ${node.last_error && html`<dt>Last error</dt><dd class="field-error">${node.last_error}</dd>`}
    </dl>`}
    <dl class="facts">
      <dt>Location</dt><dd>${region.name} <span class="muted">(${region.region_code}, ${region.region_type}; ${region.latitude.toFixed(2)}, ${region.longitude.toFixed(2)})</span></dd>
      <dt>Region state</dt><dd><${Badge} state=${STATE_BADGE[state]}>${STATE_WORDS[state]}<//></dd>
      <dt>Latency (1 h)</dt><dd>${t ? `p50 ${fmtMs(t.p50_ms)}, p95 ${fmtMs(t.p95_ms)}` : "no traffic yet"}</dd>
      <dt>Traffic (1 h)</dt><dd>${t ? `${fmtNum(t.requests)} requests, ${fmtBytes(t.bytes_out)}, edge-served ${fmtPct(t.hit_ratio)}` : "no traffic yet"}</dd>
      <dt>Client countries</dt><dd>${top.length ? top.map(([c, n]) => `${c} ${fmtNum(n)}`).join(", ") : "—"}</dd>
      <dt>Cost this month</dt><dd>${region.cost ? `${fmtMoney(region.cost.month_to_date)} (forecast ${fmtMoney(region.cost.forecast)})` : fmtMoney(0)}</dd>
      <dt>Versions served</dt><dd>${region.versions.length ? region.versions.map((v) => `v${v}`).join(", ") : "none"}</dd>
      <dt>Data centers</dt><dd>${region.datacenters.length ? region.datacenters.map((dc) => dc.name).join(", ") : "none"}</dd>
    </dl>
    ${!node && nodeRows(region.nodes)}
    <div class="actions">
      <${Button} write onClick=${() => onToggle(region.code)} aria-pressed=${chosen ? "true" : "false"}>
        ${chosen ? `Remove ${region.code} from the deploy` : `Choose ${region.code} for a deploy`}
      <//>
    </div>
  <//>`;
}

function RegionTable({ regions, selected }) {
  const rows = [...regions].sort((a, b) => (b.nodes.length - a.nodes.length) || a.code.localeCompare(b.code));
  return html`<${Table}
    caption="Regions, their edge nodes, latency, traffic and cost (what the map shows)"
    rows=${rows}
    rowKey=${(r) => r.code}
    rowClass=${(r) => (r.code === selected ? "selected" : undefined)}
    columns=${[
      { key: "code", label: "Region", render: (r) => html`<a href=${`#/map/${encodeURIComponent(r.code)}`} aria-current=${r.code === selected ? "true" : undefined}>${r.code}</a> <span class="muted">${r.name}</span>` },
      { key: "state", label: "State", render: (r) => html`<${Badge} state=${STATE_BADGE[regionState(r.nodes)]}>${STATE_WORDS[regionState(r.nodes)]}<//>` },
      { key: "nodes", label: "Edge nodes", render: (r) => r.nodes.length ? r.nodes.map((n, i) => html`${i ? ", " : ""}<span data-table-node=${n.name}>${n.name} (${nodeState(n)}, rev ${n.applied_revision ?? "—"})</span>`) : "—" },
      { key: "p50", label: "Latency p50 / p95", render: (r) => r.traffic ? `${fmtMs(r.traffic.p50_ms)} / ${fmtMs(r.traffic.p95_ms)}` : "—" },
      { key: "requests", label: "Requests (1 h)", class: "num", render: (r) => r.traffic ? fmtNum(r.traffic.requests) : "—" },
      { key: "countries", label: "From", render: (r) => r.traffic && Object.keys(r.traffic.countries).length ? Object.entries(r.traffic.countries).map(([c, n]) => `${c} ${fmtNum(n)}`).join(", ") : "—" },
      { key: "cost", label: "Cost this month", class: "num", render: (r) => fmtMoney(r.cost ? r.cost.month_to_date : 0) },
      { key: "versions", label: "Versions", render: (r) => r.versions.length ? r.versions.map((v) => `v${v}`).join(", ") : "—" },
    ]}
  />`;
}

export default function MapPage({ path }) {
  const d = useMapData();
  const { world, error: worldError } = useWorld();
  const [layers, setLayers] = useState({ latency: true, flows: true });
  const [chosen, setChosen] = useState([]);
  const regions = combine(d);
  const selected = path[0] || null;
  const selectedNode = path[1] || null;
  const region = regions && selected ? regions.find((r) => r.code === selected) : null;
  const toggle = (code) => setChosen((c) => (c.includes(code) ? c.filter((x) => x !== code) : [...c, code]));
  const hasTraffic = regions && regions.some((r) => r.traffic && r.traffic.requests > 0);
  const live = d.nodes.data ? d.nodes.data.filter((n) => n.live).length : 0;
  const error = d.regions.error || d.nodes.error || worldError;
  return html`<${Page} title="Global deployment map"
      subtitle=${d.nodes.data ? `${d.nodes.data.length} edge nodes, ${live} live · refreshed every 2 s` : undefined}>
    <${ErrorBox} error=${error} />
    <div class="map-layout">
      <${Card} title="World map" id="map-world">
        <div class="actions map-layers" role="group" aria-label="Map layers">
          <${Checkbox} label="Latency heatmap" name="layer-latency" checked=${layers.latency} onValue=${(v) => setLayers({ ...layers, latency: v })} />
          <${Checkbox} label="Traffic flows" name="layer-flows" checked=${layers.flows} onValue=${(v) => setLayers({ ...layers, flows: v })} />
        </div>
        <div class="map">
          ${world && regions
            ? html`<${WorldMap} world=${world} regions=${regions} countries=${d.traffic.data && d.traffic.data.countries}
                layers=${layers} selected=${selected} selectedNode=${selectedNode} />`
            : !error && html`<${Loading} what="the map" />`}
        </div>
        ${regions && !hasTraffic && html`<p class="muted" role="status">No traffic yet in the last hour: no latency or flows to draw.</p>`}
        <${Legend} layers=${layers} />
      <//>
      <div class="map-side">
        ${selected && regions && !region
          ? html`<${Card} title="Details" id="map-details"><${Notice} kind="warn">No region ${selected}.<//><//>`
          : html`<${Details} region=${region} nodeId=${selectedNode} onToggle=${toggle} chosen=${region && chosen.includes(region.code)} />`}
      </div>
    </div>
    <${Card} title="Regions" id="map-regions">
      ${regions ? html`<${RegionTable} regions=${regions} selected=${selected} />` : html`<${Loading} />`}
    <//>
    <${Deployments} regions=${regions} versions=${d.versions} chosen=${chosen} setChosen=${setChosen} />
  <//>`;
}
