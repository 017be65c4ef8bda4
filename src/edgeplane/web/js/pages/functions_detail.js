// One edge function (#/functions/<name>): its current version (status, rollout per region
// polled every 1.5 s while it rolls out), routes, env, secret names, limits, check path; its
// versions with "Activate" (an earlier version that was active once) and "Roll back"; its
// invocations per region over the last hour and its latest console lines (both refreshed); the
// current version's code, and from it the form that deploys the next version; Delete, asked twice.
import {
  html, useState, useEffect, useApi, useAction, navigate, Page, Card, Grid, Table, ErrorBox, Notice, Loading, Button, Badge,
  fmtAgo, fmtTime, fmtNum, fmtBytes,
} from "../ui.js";
import { fnPath, useProjectApi, VersionStatus, RouteList, MOVING } from "./functions_common.js";
import { DeployForm } from "./functions_deploy.js";

const ROLLING_EVERY = 1500;
const EVERY = 5000;
const LOGS_EVERY = 3000;

export default function FunctionDetail({ name }) {
  // Polled faster while the current version rolls out (its progress per region).
  const [moving, setMoving] = useState(false);
  // Deleting: nothing polls the function any more (it is about to be gone).
  const [deleting, setDeleting] = useState(false);
  const fn = useApi(deleting ? null : fnPath(name), { every: moving ? ROLLING_EVERY : EVERY });
  const f = fn.data;
  const nowMoving = !!(f && f.current && MOVING.has(f.current.status));
  useEffect(() => setMoving(nowMoving), [nowMoving]);
  const versions = useApi(deleting ? null : `${fnPath(name)}/versions`, { query: { limit: 100 }, every: moving ? ROLLING_EVERY : EVERY, deps: [f && f.current && f.current.status] });
  const changed = () => { fn.reload(); versions.reload(); };
  if (!f) {
    return html`<${Page} title="Function">
      <p><a href="#/functions">All functions</a></p>
      ${fn.error ? html`<${ErrorBox} error=${fn.error} />` : html`<${Loading} what="the function" />`}
    <//>`;
  }
  const cur = f.current;
  return html`<${Page} title=${`Function ${f.name}`}
      subtitle=${`${f.versions} version${f.versions === 1 ? "" : "s"} · active: ${f.active_version ? `v${f.active_version}` : "none"} · refreshed every ${(moving ? ROLLING_EVERY : EVERY) / 1000} s`}
      actions=${html`<a class="btn" href="#/functions">All functions</a> <${Delete} fn=${f} onDeleting=${setDeleting} />`}>
    <${ErrorBox} error=${fn.error} />
    ${cur ? html`<${Grid}>
      <${Current} v=${cur} />
      <${Rollout} v=${cur} />
    <//>` : html`<${Notice} kind="warn">No current version.<//>`}
    <${Versions} fn=${f} versions=${versions} onChanged=${changed} />
    ${!deleting && html`<${Metrics} name=${f.name} />
    <${Logs} name=${f.name} />`}
    ${cur && !deleting && html`<${Code} name=${f.name} version=${cur.version} onDeployed=${changed} />`}
  <//>`;
}

function Current({ v }) {
  const env = Object.entries(v.env || {});
  const facts = [
    ["Version", html`v${v.version} <${VersionStatus} status=${v.status} />`],
    v.error && ["Error", html`<span class="fn-bad">${v.error}</span>`],
    ["Routes", html`<${RouteList} routes=${v.routes} />`],
    ["Environment", env.length ? html`<ul class="sc-list">${env.map(([k, val]) => html`<li><code>${k}=${val}</code></li>`)}</ul>` : html`<span class="muted">none</span>`],
    ["Secrets", v.secrets && v.secrets.length ? html`<ul class="sc-list">${v.secrets.map((s) => html`<li><code>${s}</code> <span class="muted">(set)</span></li>`)}</ul>` : html`<span class="muted">none</span>`],
    ["Limits", `timeout ${fmtNum(v.limits.timeout_ms)} ms, memory ${fmtNum(v.limits.memory_mb)} MiB`],
    ["Check path", v.check_path ? html`<code>${v.check_path}</code>` : html`<span class="muted">none</span>`],
    ["Code", html`<code title=${v.sha256}>${v.sha256.slice(0, 12)}</code> · ${fmtBytes(v.size)}`],
    v.message && ["Message", v.message],
    ["Created", html`<span title=${fmtTime(v.created_at)}>${fmtAgo(v.created_at)}</span>${v.created_by ? ` by ${v.created_by}` : ""}`],
    ["Activated", v.activated_at ? html`<span title=${fmtTime(v.activated_at)}>${fmtAgo(v.activated_at)}</span>` : "—"],
  ].filter(Boolean);
  return html`<${Card} title="Current version" id="fn-current">
    <dl class="facts">${facts.map(([k, val]) => html`<dt>${k}</dt><dd>${val}</dd>`)}</dl>
  <//>`;
}

function Rollout({ v }) {
  return html`<${Card} title="Rollout" id="fn-rollout">
    <div aria-live="polite">
      <p>Version ${v.version}: <${VersionStatus} status=${v.status} />${v.canary_node ? html` <span class="muted">canary node ${v.canary_node}</span>` : ""}</p>
      <${Table} caption=${`Rollout of version ${v.version} per region`} rows=${v.progress} rowKey=${(p) => p.region}
        empty="No edge node runs functions yet."
        columns=${[
          { key: "region", label: "Region" },
          { key: "state", label: "State", render: (p) => html`<span data-rollout=${p.region}><${Badge} state=${p.state}>${p.state}<//></span>` },
          { key: "serving", label: "Serving", class: "num", render: (p) => `${p.serving} of ${p.nodes}` },
          { key: "failed", label: "Failed", class: "num" },
        ]} />
    </div>
  <//>`;
}

function Versions({ fn, versions, onChanged }) {
  const call = useProjectApi();
  const items = versions.data ? versions.data.items : null;
  const [activate, activated] = useAction(async (n) => {
    const out = await call("POST", `${fnPath(fn.name)}/versions/${n}/activate`);
    onChanged();
    return out;
  });
  const [rollback, rolled] = useAction(async () => {
    const out = await call("POST", `${fnPath(fn.name)}/rollback`);
    onChanged();
    return out;
  });
  // Activate: an earlier version that was active once (a new version with its content goes out
  // everywhere at once); Roll back: the newest such version before the active one, with other code.
  // (not one with the active version's content: it would change nothing)
  const sha = fn.current && fn.current.status === "active" ? fn.current.sha256 : null;
  const again = (v) => v.status === "superseded" && !!v.activated_at && v.sha256 !== sha;
  const canRollBack = !!(fn.active_version && items && items.some((v) => again(v) && v.version < fn.active_version));
  const done = rolled.done || activated.done;
  const columns = [
    { key: "version", label: "Version", class: "num", render: (v) => `v${v.version}` },
    { key: "status", label: "Status", render: (v) => html`<${VersionStatus} status=${v.status} />${v.error ? html`<br /><span class="fn-bad">${v.error}</span>` : ""}` },
    { key: "message", label: "Message", render: (v) => v.message || html`<span class="muted">—</span>` },
    { key: "created_at", label: "Created", class: "sc-nowrap", render: (v) => html`<span title=${fmtTime(v.created_at)}>${fmtAgo(v.created_at)}</span>` },
    { key: "activated_at", label: "Activated", class: "sc-nowrap", render: (v) => (v.activated_at ? html`<span title=${fmtTime(v.activated_at)}>${fmtAgo(v.activated_at)}</span>` : "—") },
    { key: "actions", label: "Actions", render: (v) => (again(v)
      ? html`<${Button} write busy=${activated.busy} onClick=${() => activate(v.version)} aria-label=${`Activate v${v.version}`}>Activate<//>`
      : "") },
  ];
  return html`<${Card} title="Versions" id="fn-versions" wide
      actions=${html`<${Button} write kind="primary" disabled=${!canRollBack} busy=${rolled.busy} onClick=${() => rollback()}>Roll back<//>`}>
    <p class="hint">Newest first. Activate sends an earlier version that was active out again, everywhere at once (as a
      new version with its content); Roll back does so with the one active before the current one.</p>
    <${ErrorBox} error=${versions.error || rolled.error || activated.error} />
    ${done && done.version && html`<${Notice} kind="good">Version ${done.version.version} goes out everywhere: ${done.version.message}.<//>`}
    <${Table} columns=${columns} rows=${items} rowKey=${(v) => v.version} caption="The function's versions" empty="No version." />
  <//>`;
}

const pct = (v) => (v === null || v === undefined ? "—" : `${fmtNum(v, 1)} %`);
const ms = (v) => (v === null || v === undefined ? "—" : `${fmtNum(v, 1)} ms`);

function Metrics({ name }) {
  const m = useApi(`${fnPath(name)}/metrics`, { query: { since: "1h" }, every: EVERY });
  const d = m.data;
  const rows = d ? [...d.regions, { ...d.total, region: "Total", total: true }] : null;
  return html`<${Card} title="Invocations, last hour" id="fn-metrics" wide>
    <${ErrorBox} error=${m.error} />
    <${Table} caption="The function's invocations per region over the last hour" rows=${d && d.regions.length ? rows : d ? [] : null}
      rowKey=${(r) => r.region} rowClass=${(r) => (r.total ? "fn-total" : undefined)} empty="No invocation in the last hour."
      columns=${[
        { key: "region", label: "Region" },
        { key: "invocations", label: "Invocations", class: "num", render: (r) => fmtNum(r.invocations, 0) },
        { key: "error_count", label: "Errors", class: "num", render: (r) => fmtNum(r.error_count, 0) },
        { key: "error_rate", label: "Error rate", class: "num", render: (r) => pct(r.error_rate) },
        { key: "p50_ms", label: "p50", class: "num", render: (r) => ms(r.p50_ms) },
        { key: "p95_ms", label: "p95", class: "num", render: (r) => ms(r.p95_ms) },
        { key: "p99_ms", label: "p99", class: "num", render: (r) => ms(r.p99_ms) },
      ]} />
  <//>`;
}

function Logs({ name }) {
  const logs = useApi(`${fnPath(name)}/logs`, { query: { limit: 50 }, every: LOGS_EVERY });
  const items = logs.data ? logs.data.items : null;
  return html`<${Card} title="Console" id="fn-logs" wide>
    <p class="hint">The latest 50 console lines from every edge node, newest first; refreshed every ${LOGS_EVERY / 1000} s.</p>
    <${ErrorBox} error=${logs.error} />
    <${Table} caption="The function's latest console lines" rows=${items} rowKey=${(l) => l.id} empty="No console line yet."
      rowClass=${(l) => `fn-log-${l.level}`}
      columns=${[
        { key: "at", label: "At", class: "sc-nowrap", render: (l) => html`<span title=${fmtTime(l.at)}>${fmtTime(l.at)}</span>` },
        { key: "level", label: "Level", render: (l) => html`<span class=${`fn-level fn-level-${l.level}`}>${l.level}</span>` },
        { key: "message", label: "Message", render: (l) => html`<span class="mono fn-message">${l.message}</span>` },
        { key: "node", label: "Node" },
        { key: "version", label: "Version", class: "num", render: (l) => (l.version ? `v${l.version}` : "—") },
      ]} />
  <//>`;
}

// The current version's code; "Edit and deploy…" turns the card into the deploy form, started
// from that version (functions_deploy.js).
function Code({ name, version, onDeployed }) {
  const v = useApi(`${fnPath(name)}/versions/${version}`);
  const [editing, setEditing] = useState(false);
  const [deployed, setDeployed] = useState(null);
  if (editing && v.data) {
    const done = (out) => { setEditing(false); setDeployed(out); onDeployed(); };
    return html`<${DeployForm} name=${name} current=${v.data} code=${v.data.code} onDeployed=${done}
      onCancel=${() => setEditing(false)} />`;
  }
  const edit = () => { setDeployed(null); setEditing(true); };
  return html`<${Card} title=${`Code of version ${version}`} id="fn-code" wide
      actions=${html`<${Button} write disabled=${!v.data} onClick=${edit}>Edit and deploy…<//>`}>
    ${deployed && html`<${Notice} kind="good">${deployed.created
      ? `Version ${deployed.version.version} made: it rolls out, canary first.`
      : `Nothing changed: the same code and settings as version ${deployed.version.version}.`}<//>`}
    <${ErrorBox} error=${v.error} />
    ${v.data ? html`<pre class="fn-source" tabindex="0" aria-label=${`Code of version ${version}`}>${v.data.code}</pre>` : !v.error && html`<${Loading} what="the code" />`}
  <//>`;
}

function Delete({ fn, onDeleting }) {
  const call = useProjectApi();
  const [sure, setSure] = useState(false);
  const [remove, state] = useAction(async () => {
    onDeleting(true);
    try {
      await call("DELETE", fnPath(fn.name));
    } catch (error) {
      onDeleting(false);
      throw error;
    }
    navigate(`#/functions?deleted=${encodeURIComponent(fn.name)}`);
  });
  if (!sure) return html`<${Button} kind="danger" write onClick=${() => setSure(true)}>Delete…<//>`;
  return html`<span class="sc-confirm" role="group" aria-label=${`Delete function ${fn.name}`}>
    <span>All ${fn.versions} version${fn.versions === 1 ? "" : "s"} go; its routes leave every node.</span>
    <${Button} kind="danger" write busy=${state.busy} onClick=${() => remove()}>Confirm: delete ${fn.name}<//>
    <${Button} onClick=${() => { setSure(false); state.reset(); }}>Keep it<//>
    <${ErrorBox} error=${state.error} />
  </span>`;
}
