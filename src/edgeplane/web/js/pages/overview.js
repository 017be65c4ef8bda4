// Overview: the project at a glance — health (edge nodes, domains, certificates, backends),
// firing alerts, the month's cost, live propagation of the configuration, recent changes.
import {
  html, Page, Card, Grid, useApi, Loading, ErrorBox, Table, Badge, Stat, fmtMoney, fmtAgo, fmtMs, fmtTime,
} from "../ui.js";

function Health({ overview, nodes }) {
  const o = overview.data;
  const n = nodes.data;
  const live = n ? n.filter((x) => x.live).length : null;
  return html`<${Card} title="Health" id="ov-health" wide>
    <${ErrorBox} error=${overview.error || nodes.error} />
    ${!o || !n
      ? html`<${Loading} />`
      : html`<div class="stats">
          <${Stat} label="edge nodes live" value=${`${live} / ${n.length}`} kind=${live < n.length ? "bad" : "good"} />
          <${Stat} label="domains" value=${o.domains.total} />
          ${Object.entries(o.domains.by_status).map(([s, c]) => html`<${Stat} label=${`domains ${s}`} value=${c} />`)}
          <${Stat} label=${`certificates expiring within ${o.certificates.soon_days} days`} value=${o.certificates.expiring_soon}
            kind=${o.certificates.expiring_soon ? "bad" : "good"} />
          <${Stat} label=${`backends down (of ${o.backends.total})`} value=${o.backends.down} kind=${o.backends.down ? "bad" : "good"} />
        </div>
        ${o.certificates.expiring.length > 0 &&
        html`<h3>Certificates expiring soon</h3>
          <${Table} caption="Certificates expiring soon" columns=${[
            { key: "domain", label: "Domain", render: (c) => html`<a href=${`#/certificates/${encodeURIComponent(c.domain)}`}>${c.domain}</a>` },
            { key: "not_after", label: "Expires", render: (c) => fmtTime(c.not_after) },
            { key: "days_left", label: "Days left", class: "num" },
          ]} rows=${o.certificates.expiring} />`}
        ${o.backends.down_list.length > 0 &&
        html`<h3>Backends down</h3>
          <${Table} caption="Backends down" columns=${[
            { key: "load_balancer", label: "Load balancer", render: (b) => html`<a href=${`#/load-balancers/${encodeURIComponent(b.load_balancer)}`}>${b.load_balancer}</a>` },
            { key: "backend", label: "Backend" },
            { key: "reason", label: "Reason" },
          ]} rows=${o.backends.down_list} />`}`}
  <//>`;
}

function FiringAlerts() {
  const alerts = useApi("alerts", { query: { state: "firing", limit: 5 }, every: 10000 });
  return html`<${Card} title="Firing alerts" id="ov-alerts" actions=${html`<a href="#/alerts">All alerts</a>`}>
    <${ErrorBox} error=${alerts.error} />
    <${Table}
      caption="The newest firing alerts"
      empty="No alert is firing."
      rows=${alerts.data}
      columns=${[
        { key: "severity", label: "Severity", render: (a) => html`<${Badge} state=${a.severity === "critical" ? "critical" : "warning"}>${a.severity}<//>` },
        { key: "message", label: "Alert" },
        { key: "object_id", label: "Object" },
        { key: "started_at", label: "Since", render: (a) => fmtAgo(a.started_at || a.created_at) },
      ]}
    />
  <//>`;
}

function Costs() {
  const costs = useApi("costs");
  const c = costs.data;
  return html`<${Card} title="Cost this month" id="ov-costs">
    <${ErrorBox} error=${costs.error} />
    ${c
      ? html`<div class="stats">
          <${Stat} label="month to date" value=${fmtMoney(c.month_to_date, c.currency)} />
          <${Stat} label="projected for the month" value=${fmtMoney(c.forecast, c.currency)} />
        </div>
        <p class="muted">${fmtTime(c.period_start).slice(0, 10)} to ${fmtTime(c.period_end).slice(0, 10)}; budgets are on the <a href="#/alerts/budgets">alerts page</a>.</p>`
      : !costs.error && html`<${Loading} />`}
  <//>`;
}

function Propagation({ nodes }) {
  const rev = useApi("revision", { every: 2000 });
  const current = rev.data ? rev.data.revision : null;
  return html`<${Card} title="Propagation" id="ov-propagation" wide>
    <${ErrorBox} error=${rev.error || nodes.error} />
    <p>Current revision: <strong>${current ?? "…"}</strong></p>
    <${Table}
      caption="Each edge node's applied revision"
      empty="No edge node has registered."
      rows=${nodes.data}
      rowKey=${(n) => n.id}
      columns=${[
        { key: "name", label: "Node" },
        { key: "region", label: "Region" },
        { key: "live", label: "State", render: (n) => html`<${Badge} state=${n.live ? "live" : "offline"}>${n.live ? "live" : n.status}<//>` },
        { key: "applied_revision", label: "Applied revision", class: "num" },
        { key: "desired_revision", label: "Wanted revision", class: "num" },
        { key: "lag", label: "Lag", class: "num", render: (n) => (n.applied_revision === null ? "—" : Math.max(0, n.desired_revision - n.applied_revision)) },
        { key: "in_sync", label: "In sync", render: (n) => html`<${Badge} state=${n.in_sync ? "ok" : "stale"}>${n.in_sync ? "yes" : "no"}<//>` },
        { key: "propagation_ms", label: "Last propagation", class: "num", render: (n) => fmtMs(n.propagation_ms) },
        { key: "applied_at", label: "Applied", render: (n) => fmtAgo(n.applied_at) },
        { key: "last_error", label: "Last error", render: (n) => n.last_error || "—" },
      ]}
    />
  <//>`;
}

function RecentChanges() {
  const audit = useApi("audit", { query: { limit: 8 }, every: 10000 });
  return html`<${Card} title="Recent changes" id="ov-audit" wide actions=${html`<a href="#/audit">Audit log</a>`}>
    <${ErrorBox} error=${audit.error} />
    <${Table}
      caption="The newest audit events of the project"
      empty="No change yet."
      rows=${audit.data && audit.data.items}
      rowKey=${(e) => e.id}
      columns=${[
        { key: "at", label: "When", render: (e) => fmtAgo(e.at) },
        { key: "actor", label: "Who" },
        { key: "action", label: "What" },
        { key: "kind", label: "Kind" },
        { key: "object_id", label: "Object", render: (e) => html`<a href=${`#/audit?kind=${encodeURIComponent(e.kind)}&object_id=${encodeURIComponent(e.object_id)}`}>${e.object_id}</a>` },
      ]}
    />
  <//>`;
}

export default function Overview() {
  const overview = useApi("overview", { every: 15000 });
  const nodes = useApi("edge/nodes", { every: 2000, project: false });
  return html`<${Page} title="Overview" subtitle="The project at a glance">
    <${Health} overview=${overview} nodes=${nodes} />
    <${Grid}>
      <${FiringAlerts} />
      <${Costs} />
    <//>
    <${Propagation} nodes=${nodes} />
    <${RecentChanges} />
  <//>`;
}
