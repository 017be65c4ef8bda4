// Alerts: firing and resolved alerts (acknowledge), alert rules, notification channels (test),
// silences, and the project's monthly budgets (from the costs API).
import {
  html, useState, Page, Card, Tabs, useApi, useAction, api, Table, ErrorBox, Button, Badge, Select,
  navigate, fmtAgo, fmtTime, fmtMoney, fmtNum, fmtMs,
} from "../ui.js";
import { ResourceTab } from "./inventory_resource.js";

const SEVERITIES = ["info", "warning", "critical"];
const sevBadge = (s) => html`<${Badge} state=${s === "critical" ? "critical" : s === "info" ? "info" : "warning"}>${s}<//>`;

function Acknowledge({ alert, onDone }) {
  const [run, state] = useAction(() => api("POST", `alerts/${encodeURIComponent(alert.id)}/acknowledge`));
  if (alert.acknowledged_at) return html`<span class="muted">acknowledged by ${alert.acknowledged_by} ${fmtAgo(alert.acknowledged_at)}</span>`;
  if (alert.state !== "firing") return null;
  return html`<span>
    <${Button} kind="small" write busy=${state.busy} aria-label=${`Acknowledge ${alert.message}`} onClick=${async () => { if (await run()) onDone(); }}>Acknowledge<//>
    ${state.error && html`<span class="field-error" role="alert">${state.error.message}</span>`}
  </span>`;
}

function AlertList() {
  const [state, setState] = useState("firing");
  const [kind, setKind] = useState("");
  const alerts = useApi("alerts", { query: { state: state || undefined, kind: kind || undefined, limit: 200 }, every: 5000 });
  return html`<${Card} title="Alerts" id="alerts-list">
    <div class="form-row ops-filters">
      <${Select} label="State" name="state" value=${state} onValue=${setState} options=${[["firing", "Firing"], ["resolved", "Resolved"], ["", "All"]]} />
      <${Select} label="Kind" name="kind" value=${kind} onValue=${setKind}
        options=${[["", "Any"], ["rule", "Alert rules"], ["certificate_renewal_failed", "Certificate renewal failed"], ["budget", "Budget"]]} />
    </div>
    <${ErrorBox} error=${alerts.error} />
    <${Table}
      caption=${state ? `${state[0].toUpperCase()}${state.slice(1)} alerts` : "All alerts"}
      empty=${state === "firing" ? "No alert is firing." : "No alert."}
      rows=${alerts.data}
      rowKey=${(a) => a.id}
      columns=${[
        { key: "severity", label: "Severity", render: (a) => sevBadge(a.severity) },
        { key: "state", label: "State", render: (a) => html`<${Badge} state=${a.state}>${a.state}${a.silenced ? " (silenced)" : ""}<//>` },
        { key: "message", label: "Alert" },
        { key: "object_id", label: "Object" },
        { key: "value", label: "Value", class: "num", render: (a) => (a.value === null || a.value === undefined ? "—" : `${fmtNum(a.value)}${a.threshold !== null && a.threshold !== undefined ? ` (threshold ${fmtNum(a.threshold)})` : ""}`) },
        { key: "started_at", label: "Started", render: (a) => html`<span title=${fmtTime(a.started_at || a.created_at)}>${fmtAgo(a.started_at || a.created_at)}</span>` },
        { key: "resolved_at", label: "Resolved", render: (a) => (a.resolved_at ? fmtAgo(a.resolved_at) : "—") },
        { key: "ack", label: "Acknowledged", render: (a) => html`<${Acknowledge} alert=${a} onDone=${alerts.reload} />` },
      ]}
    />
  <//>`;
}

function EnableToggle({ rule, reload }) {
  const [run, state] = useAction(() => api("PATCH", `alerts/rules/${encodeURIComponent(rule.id)}`, { body: { enabled: !rule.enabled } }));
  return html`<${Button} kind="small" write busy=${state.busy} aria-label=${`${rule.enabled ? "Disable" : "Enable"} rule ${rule.id}`}
    onClick=${async () => { if (await run()) reload(); }}>${rule.enabled ? "Disable" : "Enable"}<//>
    ${state.error && html`<span class="field-error" role="alert">${state.error.message}</span>`}`;
}

function Rules() {
  const catalog = useApi("metrics/series", { project: false });
  const series = catalog.data ? catalog.data.map((s) => [s.name, `${s.name} (${s.unit})`]) : [["cpu_percent", "cpu_percent"]];
  const spec = {
    key: "rules",
    title: "Alert rules",
    noun: "rule",
    path: "alerts/rules",
    idKey: "id",
    canDelete: (r) => !r.builtin,
    intro: "A rule fires for each object whose series crosses the threshold over the window, for at least the hold time. Shipped rules can be changed or disabled, not deleted.",
    columns: [
      { key: "id", label: "ID" },
      { key: "name", label: "Name" },
      { key: "condition", label: "Condition", render: (r) => html`<code>${r.series} ${r.comparison} ${fmtNum(r.threshold)}</code>${Object.keys(r.selector || {}).length ? html` <span class="muted">where ${Object.entries(r.selector).map(([k, v]) => `${k}=${v}`).join(", ")}</span>` : ""}` },
      { key: "window_s", label: "Window", render: (r) => `${r.window_s} s${r.for_s ? `, for ${r.for_s} s` : ""}` },
      { key: "severity", label: "Severity", render: (r) => sevBadge(r.severity) },
      { key: "enabled", label: "Enabled", render: (r) => html`<${Badge} state=${r.enabled ? "enabled" : "off"}>${r.enabled ? "enabled" : "disabled"}<//>` },
      { key: "firing", label: "Firing", class: "num", render: (r) => (r.firing ? html`<${Badge} state="firing">${r.firing}<//>` : `0${r.pending ? ` (${r.pending} pending)` : ""}`) },
    ],
    fields: [
      { name: "id", label: "ID", edit: false, required: true, hint: "lower-case letters, digits, _ and -" },
      { name: "name", label: "Name", required: true },
      { name: "series", label: "Series", type: "select", options: series, default: "cpu_percent", required: true },
      { name: "comparison", label: "Comparison", type: "select", options: [">", ">=", "<", "<=", "==", "!="], default: ">", required: true },
      { name: "threshold", label: "Threshold", type: "number", required: true },
      { name: "window_s", label: "Window (seconds)", type: "number", default: 300 },
      { name: "for_s", label: "Hold for (seconds)", type: "number", default: 0 },
      { name: "severity", label: "Severity", type: "select", options: SEVERITIES, default: "warning" },
      { name: "selector", label: "Selector (JSON)", type: "json", default: {}, hint: 'e.g. {"domain": "shop.example.com"}; {} for all' },
      { name: "channels", label: "Channels", type: "list", hint: "channel ids, comma-separated; empty: every channel" },
      { name: "description", label: "Description" },
    ],
  };
  return html`<${ResourceTab} spec=${spec} extra=${(r, reload) => html`<${EnableToggle} rule=${r} reload=${reload} />`} />`;
}

function TestChannel({ channel }) {
  const [run, state] = useAction(() => api("POST", `alerts/channels/${encodeURIComponent(channel.id)}/test`));
  const r = state.done;
  return html`<span>
    <${Button} kind="small" write busy=${state.busy} aria-label=${`Send a test message to ${channel.id}`} onClick=${run}>Test<//>
    ${r && html` <${Badge} state=${r.ok ? "ok" : "failed"}>${r.ok ? `delivered (${fmtMs(r.ms)})` : `failed: ${r.error || r.status}`}<//>`}
    ${state.error && html`<span class="field-error" role="alert">${state.error.message}</span>`}
  </span>`;
}

const CHANNELS = {
  key: "channels",
  title: "Notification channels",
  noun: "channel",
  path: "alerts/channels",
  idKey: "id",
  noEdit: true,
  intro: "Where alerts are sent: a webhook (signed with HMAC-SHA256 when it has a secret), an e-mail (SMTP) or a Slack-compatible chat webhook. Fill in the fields of the kind you choose.",
  columns: [
    { key: "id", label: "ID" },
    { key: "name", label: "Name" },
    { key: "kind", label: "Kind" },
    { key: "config", label: "Settings", render: (c) => Object.entries(c.config || {}).filter(([k]) => k !== "kind").map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ") },
    { key: "enabled", label: "Enabled", render: (c) => html`<${Badge} state=${c.enabled ? "enabled" : "off"}>${c.enabled ? "enabled" : "disabled"}<//>` },
  ],
  fields: [
    { name: "id", label: "ID", required: true },
    { name: "name", label: "Name", required: true },
    { name: "config.kind", label: "Kind", type: "select", options: ["webhook", "email", "slack"], default: "webhook", required: true },
    { name: "config.url", label: "URL (webhook, slack)" },
    { name: "config.secret", label: "Secret (webhook, optional)" },
    { name: "config.smtp_host", label: "SMTP host (email)" },
    { name: "config.smtp_port", label: "SMTP port (email)", type: "number" },
    { name: "config.from_address", label: "From (email)" },
    { name: "config.to", label: "To (email, comma-separated)", type: "list" },
  ],
};

function Channels() {
  return html`<${ResourceTab} spec=${CHANNELS} extra=${(c) => html`<${TestChannel} channel=${c} />`} />`;
}

const SILENCES = {
  key: "silences",
  title: "Silences",
  noun: "silence",
  path: "alerts/silences",
  idKey: "id",
  noEdit: true,
  deleteLabel: "End",
  canDelete: (s) => s.active,
  intro: "While a silence is active, the alerts it matches are recorded but not sent.",
  columns: [
    { key: "id", label: "ID" },
    { key: "rule", label: "Rule", render: (s) => s.rule || "any" },
    { key: "object", label: "Object", render: (s) => s.object || "any" },
    { key: "severity", label: "Severity", render: (s) => s.severity || "any" },
    { key: "window", label: "From – until", render: (s) => `${fmtTime(s.starts_at)} – ${fmtTime(s.ends_at)}` },
    { key: "active", label: "Active", render: (s) => html`<${Badge} state=${s.active ? "active" : "off"}>${s.active ? "active" : "ended"}<//>` },
    { key: "comment", label: "Comment" },
    { key: "created_by", label: "By" },
  ],
  fields: [
    { name: "id", label: "ID", hint: "optional" },
    { name: "rule", label: "Rule ID", hint: "empty: any rule" },
    { name: "object", label: "Object", hint: "a domain, a pool; * wildcards" },
    { name: "severity", label: "Severity", type: "select", options: [["", "any"], ...SEVERITIES] },
    { name: "duration_s", label: "Duration (seconds)", type: "number", default: 3600 },
    { name: "comment", label: "Comment" },
  ],
};

const BUDGETS = {
  key: "budgets",
  title: "Budgets",
  noun: "budget",
  path: "costs/budgets",
  idKey: "id",
  intro: "A monthly budget raises a budget alert for each threshold (percent of the amount) that the month-to-date spending reaches.",
  columns: [
    { key: "id", label: "ID" },
    { key: "name", label: "Name" },
    { key: "amount", label: "Amount", class: "num", render: (b) => fmtMoney(b.amount, b.currency) },
    { key: "month_to_date", label: "Month to date", class: "num", render: (b) => fmtMoney(b.month_to_date, b.currency) },
    { key: "forecast", label: "Forecast", class: "num", render: (b) => fmtMoney(b.forecast, b.currency) },
    { key: "percent", label: "Used", class: "num", render: (b) => `${fmtNum(b.percent, 1)} %` },
    { key: "thresholds", label: "Thresholds", render: (b) => b.thresholds.map((t) => `${t} %`).join(", ") },
    { key: "reached", label: "Reached", render: (b) => (b.reached ? html`<${Badge} state="warning">${b.reached} %<//>` : "—") },
  ],
  fields: [
    { name: "id", label: "ID", edit: false, required: true },
    { name: "name", label: "Name", hint: "default: the id" },
    { name: "amount", label: "Amount per month", type: "number", required: true },
    { name: "thresholds", label: "Thresholds (percent, comma-separated)", type: "list", number: true, default: [50, 80, 100] },
  ],
};

const TABS = [
  ["alerts", "Alerts"],
  ["rules", "Rules"],
  ["channels", "Channels"],
  ["silences", "Silences"],
  ["budgets", "Budgets"],
];

export default function Alerts({ path }) {
  const tab = TABS.some(([k]) => k === path[0]) ? path[0] : "alerts";
  return html`<${Page} title="Alerts" subtitle="Alerts, the rules that raise them, where they are sent, silences and budgets">
    <${Tabs} label="Alerts" tabs=${TABS} current=${tab} onSelect=${(k) => navigate(`#/alerts/${k}`)} />
    ${tab === "alerts" && html`<${AlertList} />`}
    ${tab === "rules" && html`<${Rules} />`}
    ${tab === "channels" && html`<${Channels} />`}
    ${tab === "silences" && html`<${ResourceTab} key="silences" spec=${SILENCES} />`}
    ${tab === "budgets" && html`<${ResourceTab} key="budgets" spec=${BUDGETS} />`}
  <//>`;
}
