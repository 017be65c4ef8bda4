// Inventory: regions (locations), data centers (tier, capacity, usage), servers (type,
// location, capacity, latest metrics), services on servers and DR configs — each with create,
// edit and delete as the API allows — and a data center's capacity.
import {
  html, Page, Card, Tabs, useApi, Table, ErrorBox, Loading, Badge, navigate, fmtNum, fmtPct,
} from "../ui.js";
import { ResourceTab } from "./inventory_resource.js";

const ENVIRONMENTS = ["prod", "staging", "dev"];
const REGION_CODES = [["", "(from the coordinates)"], "na", "sa", "eu", "apac", "mea"];
const REGION_TYPES = [["", "(from the region code)"], "americas", "europe", "asia_pacific", "middle_east_africa"];

const cap = (c) => (c ? `${fmtNum(c.cpu)} CPU · ${fmtNum(c.memory)} GB RAM · ${fmtNum(c.storage)} GB disk` : "—");
const usage = (r) => {
  const pct = r.capacity && r.capacity.cpu ? r.allocated.cpu / r.capacity.cpu : 0;
  return html`<span>${cap(r.allocated)}</span> <span class="muted">(${fmtPct(pct, 0)} CPU)</span>`;
};
const capacityFields = (required) => [
  { name: "capacity.cpu", label: "CPU cores", type: "number", required, default: required ? 0 : undefined },
  { name: "capacity.memory", label: "Memory (GB)", type: "number", required, default: required ? 0 : undefined },
  { name: "capacity.storage", label: "Storage (GB)", type: "number", required, default: required ? 0 : undefined },
];

const REGIONS = {
  key: "regions",
  title: "Regions",
  noun: "region",
  path: "infrastructure/regions",
  project: false,
  idKey: "code",
  intro: "Locations (us-east) within region codes (na) and region types (americas); shared by every project.",
  columns: [
    { key: "code", label: "Code" },
    { key: "name", label: "Name" },
    { key: "region_code", label: "Region code" },
    { key: "region_type", label: "Region type" },
    { key: "latitude", label: "Latitude", class: "num" },
    { key: "longitude", label: "Longitude", class: "num" },
  ],
  fields: [
    { name: "code", label: "Code", required: true, hint: "e.g. eu-south" },
    { name: "name", label: "Name", required: true },
    { name: "latitude", label: "Latitude", type: "number", required: true },
    { name: "longitude", label: "Longitude", type: "number", required: true },
    { name: "region_code", label: "Region code", type: "select", options: REGION_CODES },
    { name: "region_type", label: "Region type", type: "select", options: REGION_TYPES },
  ],
};

const DATACENTERS = {
  key: "datacenters",
  title: "Data centers",
  noun: "data center",
  path: "infrastructure/datacenters",
  paged: true,
  idKey: "id",
  columns: [
    { key: "id", label: "ID" },
    { key: "name", label: "Name" },
    { key: "location", label: "Location", render: (r) => `${r.location} (${r.region})` },
    { key: "tier", label: "Tier", class: "num" },
    { key: "capacity", label: "Capacity", render: (r) => cap(r.capacity) },
    { key: "allocated", label: "Used", render: usage },
    { key: "environment", label: "Environment" },
  ],
  fields: [
    { name: "id", label: "ID", edit: false, hint: "optional; lower-case letters, digits, . _ -" },
    { name: "name", label: "Name", required: true },
    { name: "location", label: "Location", hint: "e.g. us-east (see Regions)" },
    { name: "region", label: "Region", hint: "a region code (na, eu, …), when no location" },
    { name: "tier", label: "Tier", type: "select", number: true, options: ["1", "2", "3", "4"].map((t) => [t, `Tier ${t}`]), default: "3", required: true },
    ...capacityFields(true),
    { name: "environment", label: "Environment", type: "select", options: ENVIRONMENTS, default: "prod" },
  ],
};

const SERVERS = {
  key: "servers",
  title: "Servers",
  noun: "server",
  path: "infrastructure/servers",
  paged: true,
  idKey: "id",
  columns: [
    { key: "id", label: "ID" },
    { key: "name", label: "Name" },
    { key: "type", label: "Type" },
    { key: "location", label: "Location", render: (r) => `${r.location}${r.data_center_id ? ` · ${r.data_center_id}` : ""}` },
    { key: "status", label: "Status", render: (r) => html`<${Badge} state=${r.status === "offline" ? "offline" : r.status}>${r.status}<//>` },
    { key: "capacity", label: "Capacity", render: (r) => cap(r.capacity) },
    {
      key: "metrics",
      label: "Latest metrics",
      render: (r) => (r.metrics
        ? `CPU ${fmtNum(r.metrics.cpu_percent, 0)} % · memory ${fmtNum(r.metrics.memory_percent, 0)} % · disk ${fmtNum(r.metrics.storage_percent, 0)} % · ${fmtNum(r.metrics.requests_per_second)} req/s`
        : "none reported"),
    },
  ],
  fields: [
    { name: "id", label: "ID", edit: false, hint: "optional" },
    { name: "name", label: "Name", required: true },
    { name: "type", label: "Type", type: "select", options: ["primary", "secondary", "edge", "cache"], default: "edge", required: true },
    { name: "location", label: "Location", hint: "e.g. us-east; or the data center's" },
    { name: "data_center_id", label: "Data center ID" },
    { name: "address", label: "Address", hint: "IP address or host name" },
    ...capacityFields(true),
    { name: "status", label: "Status", type: "select", options: ["active", "provisioning", "degraded", "maintenance", "offline"], default: "active" },
    { name: "environment", label: "Environment", type: "select", options: ENVIRONMENTS, default: "prod" },
  ],
};

const SERVICES = {
  key: "services",
  title: "Services",
  noun: "service",
  path: "infrastructure/services",
  paged: true,
  idKey: "id",
  columns: [
    { key: "id", label: "ID" },
    { key: "server_id", label: "Server" },
    { key: "type", label: "Type" },
    { key: "status", label: "Status", render: (r) => html`<${Badge} state=${r.status === "active" ? "active" : "disabled"}>${r.status}<//>` },
    { key: "resources", label: "Resources", render: (r) => cap(r.resources) },
    { key: "settings", label: "Settings" },
  ],
  fields: [
    { name: "id", label: "ID", edit: false, hint: "optional" },
    { name: "server_id", label: "Server ID", required: true },
    { name: "type", label: "Type", type: "select", required: true, default: "web",
      options: ["cdn", "web", "api", "database", "cache", "dns", "storage", "compute", "edge_function", "load_balancer", "monitoring"] },
    { name: "resources.cpu", label: "CPU cores", type: "number", hint: "empty: the type's default" },
    { name: "resources.memory", label: "Memory (GB)", type: "number" },
    { name: "resources.storage", label: "Storage (GB)", type: "number" },
    { name: "status", label: "Status", type: "select", options: ["active", "disabled"], default: "active" },
    { name: "settings", label: "Settings (JSON)", type: "json", default: {} },
  ],
};

const DR = {
  key: "dr",
  title: "DR configs",
  noun: "DR config",
  path: "infrastructure/dr-configs",
  paged: true,
  idKey: "id",
  columns: [
    { key: "id", label: "ID" },
    { key: "name", label: "Name" },
    { key: "primary_dc", label: "Primary" },
    { key: "backup_dc", label: "Backup" },
    { key: "rpo", label: "RPO (min)", class: "num" },
    { key: "rto", label: "RTO (min)", class: "num" },
    { key: "environment", label: "Environment" },
    { key: "warnings", label: "Warnings", render: (r) => (r.warnings && r.warnings.length ? r.warnings.join("; ") : "—") },
  ],
  fields: [
    { name: "id", label: "ID", edit: false, hint: "optional" },
    { name: "name", label: "Name", required: true },
    { name: "primary_dc", label: "Primary data center", required: true },
    { name: "backup_dc", label: "Backup data center", required: true },
    { name: "rpo", label: "RPO (minutes)", type: "number", required: true },
    { name: "rto", label: "RTO (minutes)", type: "number", required: true },
    { name: "failover_mode", label: "Failover", type: "select", options: ["automatic", "confirmed"], default: "automatic" },
    { name: "failback_mode", label: "Failback", type: "select", options: ["automatic", "confirmed"], default: "automatic" },
    { name: "drill_every_days", label: "Drill every (days)", type: "number", default: 30, hint: "days between scheduled drills (spec: monthly)" },
    { name: "environment", label: "Environment", type: "select", options: ENVIRONMENTS, default: "prod" },
  ],
};

const TABS = [REGIONS, DATACENTERS, SERVERS, SERVICES, DR];

function Capacity({ id }) {
  const report = useApi(`infrastructure/datacenters/${encodeURIComponent(id)}/capacity`);
  const servers = useApi("infrastructure/servers", { query: { data_center_id: id, limit: 100 } });
  const r = report.data;
  const rows = r ? ["cpu", "memory", "storage"].map((k) => ({ k, total: r.total[k], allocated: r.allocated[k], free: r.free[k] })) : undefined;
  return html`<${Card} title=${`Capacity of data center ${id}`} id="inv-capacity">
    <${ErrorBox} error=${report.error || servers.error} />
    ${!r && !report.error && html`<${Loading} />`}
    ${r && html`<${Table} caption="Total, allocated to servers and free" rows=${rows} rowKey=${(x) => x.k} columns=${[
      { key: "k", label: "Resource", render: (x) => ({ cpu: "CPU cores", memory: "Memory (GB)", storage: "Storage (GB)" })[x.k] },
      { key: "total", label: "Total", class: "num", render: (x) => fmtNum(x.total) },
      { key: "allocated", label: "Allocated", class: "num", render: (x) => fmtNum(x.allocated) },
      { key: "free", label: "Free", class: "num", render: (x) => fmtNum(x.free) },
      { key: "pct", label: "Used", render: (x) => html`<span class="ops-meter"><span class="ops-meter-bar" style=${{ width: `${Math.min(100, x.total ? (100 * x.allocated) / x.total : 0)}%` }}></span></span> ${fmtPct(x.total ? x.allocated / x.total : 0, 0)}` },
    ]} />`}
    <h3>Servers in it</h3>
    <${Table} caption="Servers in the data center" empty="No server in this data center." rows=${servers.data && servers.data.items} rowKey=${(s) => s.id}
      columns=${[{ key: "id", label: "ID" }, { key: "name", label: "Name" }, { key: "type", label: "Type" }, { key: "capacity", label: "Capacity", render: (s) => cap(s.capacity) }]} />
    <p><a href="#/inventory/datacenters">Back to data centers</a></p>
  <//>`;
}

export default function Inventory({ path }) {
  const tab = TABS.find((t) => t.key === path[0]) || TABS[0];
  const capacityOf = tab.key === "datacenters" && path[1] === "capacity" ? path[2] : null;
  return html`<${Page} title="Inventory" subtitle="Regions, data centers, servers, services and disaster recovery">
    <${Tabs} label="Inventory" tabs=${TABS.map((t) => [t.key, t.title])} current=${tab.key} onSelect=${(k) => navigate(`#/inventory/${k}`)} />
    ${capacityOf
      ? html`<${Capacity} id=${capacityOf} />`
      : html`<${ResourceTab} key=${tab.key} spec=${tab}
          extra=${tab.key === "datacenters"
            ? (r) => html`<a class="btn small" href=${`#/inventory/datacenters/capacity/${encodeURIComponent(r.id)}`} aria-label=${`Capacity of ${r.id}`}>Capacity</a>`
            : undefined} />`}
  <//>`;
}
