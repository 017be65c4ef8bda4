// The global map's edge deployments: the current version's live rollout per region (polled),
// the versions with activate, rollback, and the deploy form (bundle, regions chosen on the map
// or here, strategy).
import {
  html, useState, useApi, useSession, api, useAction, fieldError, Card, ErrorBox, Notice, Table, Badge, Button,
  WriteForm, Select, Checkbox, Input, fmtTime, fmtMoney, fmtBytes, Loading,
} from "../ui.js";

const LIVE = new Set(["canary", "rolling", "active"]);
const MOVING = new Set(["canary", "rolling"]);
const PROGRESS_BADGE = { pending: "pending", canary: "canary", rolling: "rolling", active: "active", done: "done", failed: "failed", offline: "offline" };

function Rollout({ current }) {
  const moving = MOVING.has(current.status);
  const detail = useApi(`infrastructure/edge/deployments/${encodeURIComponent(current.id)}`, { every: moving ? 1500 : 5000 });
  const dep = detail.data || current;
  return html`<div class="rollout" aria-live="polite">
    <h3>Version ${dep.version}: <${Badge} state=${dep.status === "active" ? "active" : dep.status}>${dep.status}<//></h3>
    <p class="muted">Bundle <code>${dep.bundle.slice(0, 12)}</code> · strategy ${dep.strategy} · ${fmtMoney(dep.cost_per_month)}/month
      ${dep.placement && dep.placement.reason ? ` · ${dep.placement.reason}` : ""}</p>
    ${dep.error && html`<${Notice} kind="warn">${dep.error}<//>`}
    <${ErrorBox} error=${detail.error} />
    <${Table}
      caption=${`Rollout of version ${dep.version} per region`}
      rows=${dep.progress && dep.progress.length ? dep.progress : detail.data ? [] : null}
      rowKey=${(p) => p.region}
      empty="No region reports yet."
      columns=${[
        { key: "region", label: "Region", render: (p) => html`<a href=${`#/map/${encodeURIComponent(p.region)}`}>${p.region}</a>` },
        { key: "state", label: "State", render: (p) => html`<span data-rollout=${p.region}><${Badge} state=${p.state === "done" ? "done" : PROGRESS_BADGE[p.state] || p.state}>${p.state}<//></span>` },
        { key: "active", label: "Serving", class: "num", render: (p) => `${p.active} of ${p.nodes}` },
        { key: "pending", label: "Pending", class: "num" },
        { key: "failed", label: "Failed", class: "num" },
      ]}
    />
  </div>`;
}

function Versions({ list, current, onActivate, busy }) {
  return html`<${Table}
    caption="Versions"
    rows=${list}
    rowKey=${(v) => v.id}
    columns=${[
      { key: "version", label: "Version", render: (v) => `v${v.version}` },
      { key: "status", label: "Status", render: (v) => html`<${Badge} state=${v.status}>${v.status}<//>` },
      { key: "regions", label: "Regions" },
      { key: "bundle", label: "Bundle", render: (v) => html`<code>${v.bundle.slice(0, 12)}</code>` },
      { key: "created_at", label: "Created", render: (v) => `${fmtTime(v.created_at)} by ${v.created_by}` },
      { key: "act", label: "Action", render: (v) => (current && v.id === current.id
          ? html`<span class="muted">current</span>`
          : html`<${Button} write kind="small" busy=${busy} onClick=${() => onActivate(v)} aria-label=${`Activate version ${v.version}`}>Activate<//>`) },
    ]}
  />`;
}

function DeployForm({ regions, chosen, setChosen, onDone }) {
  const { project } = useSession();
  const bundles = useApi("infrastructure/edge/bundles");
  const [picked, setBundle] = useState(null);
  const list = bundles.data || [];
  const bundle = picked ?? (list.length ? list[0].id : "");
  const [strategy, setStrategy] = useState("all");
  const [locations, setLocations] = useState("");
  const [spa, setSpa] = useState(false);
  const [run, state] = useAction(async () => {
    const body = { strategy, spa };
    if (bundle) body.bundle = bundle;
    if (chosen.length) body.regions = chosen;
    const locs = locations.split(",").map((s) => s.trim()).filter(Boolean);
    if (locs.length) body.locations = locs;
    const done = await api("POST", "infrastructure/edge/deploy", { body, project });
    onDone();
    return done;
  });
  const withNodes = (regions || []).filter((r) => r.nodes.length);
  const others = (regions || []).filter((r) => !r.nodes.length);
  const box = (r) => html`<${Checkbox} key=${r.code} name=${`deploy-region-${r.code}`}
    label=${`${r.code}${r.nodes.length ? ` (${r.nodes.filter((n) => n.live).length} live)` : ""}`}
    checked=${chosen.includes(r.code)}
    onValue=${(v) => setChosen((c) => (v ? [...c.filter((x) => x !== r.code), r.code] : c.filter((x) => x !== r.code)))} />`;
  return html`<${WriteForm} label="Deploy to the edge" onSubmit=${run}>
    <h3>Deploy</h3>
    <div class="form-row">
      <${Select} label="Bundle" name="bundle" value=${bundle} onValue=${setBundle} error=${fieldError(state.error, "bundle")}
        hint=${list.length ? "Newest first; edgeplane deploy DIR uploads another." : "No bundle uploaded yet: edgeplane deploy DIR uploads one."}
        options=${[...(list.length ? [] : [["", "none uploaded yet"]]), ...list.map((b) => [b.id, `${b.id.slice(0, 12)} · ${b.files} files, ${fmtBytes(b.size)} · ${fmtTime(b.created_at)}`])]} />
      <${Select} label="Strategy" name="strategy" value=${strategy} onValue=${setStrategy} error=${fieldError(state.error, "strategy")}
        options=${[["all", "all: every chosen region"], ["closest", "closest to the users"], ["cheapest", "cheapest meeting the latency target"]]} />
      <${Input} label="User locations" name="locations" value=${locations} onValue=${setLocations} error=${fieldError(state.error, "locations")}
        hint="For closest / cheapest: DE, US@3, 48.8,2.3 (comma separated); none: the project's traffic." />
    </div>
    <div class="region-choice" role="group" aria-labelledby="deploy-regions-label">
      <p class="label" id="deploy-regions-label">Regions ${chosen.length ? `(${chosen.length} chosen: ${chosen.join(", ")})` : "(none chosen: every region with a live edge node)"}</p>
      <div class="checks">${withNodes.map(box)}</div>
      ${others.length > 0 && html`<details><summary>Regions without an edge node (${others.length})</summary><div class="checks">${others.map(box)}</div></details>`}
      ${fieldError(state.error, "regions") && html`<p class="field-error" role="alert">${fieldError(state.error, "regions")}</p>`}
    </div>
    <${Checkbox} label="Single-page app (unknown paths get /index.html)" name="spa" checked=${spa} onValue=${setSpa} error=${fieldError(state.error, "spa")} />
    <${ErrorBox} error=${state.error && !fieldError(state.error, "bundle") && !fieldError(state.error, "regions") && !fieldError(state.error, "strategy") && !fieldError(state.error, "locations") && !fieldError(state.error, "spa") ? state.error : null} />
    ${state.done && state.done.deployment && html`<${Notice} kind="good">Version ${state.done.deployment.version} is rolling out to ${state.done.regions_deployed.join(", ")}.<//>`}
    <button type="submit" class="btn primary" disabled=${state.busy}>Deploy</button>
  <//>`;
}

export function Deployments({ regions, versions, chosen, setChosen }) {
  const { project } = useSession();
  const list = versions.data || [];
  const current = list.find((v) => LIVE.has(v.status)) || null;
  // What POST /rollback reactivates: the newest earlier version that was active, of another bundle.
  const before = current
    ? list.find((v) => v.status === "superseded" && v.activated_at && v.version < current.version && v.bundle !== current.bundle)
    : null;
  const versionOf = (id) => (list.find((v) => v.id === id) || {}).version;
  const [activate, activating] = useAction(async (v) => {
    const done = await api("POST", `infrastructure/edge/deployments/${encodeURIComponent(v.id)}/activate`, { project });
    versions.reload();
    return done;
  });
  const [rollback, rolling] = useAction(async () => {
    const done = await api("POST", "infrastructure/edge/rollback", { project });
    versions.reload();
    return done;
  });
  return html`<${Card} title="Edge deployments" id="map-deployments"
      actions=${current && html`<${Button} write kind="danger" busy=${rolling.busy}
        onClick=${() => rollback()}>Roll back${before ? ` to v${before.version}` : ""}<//>`}>
    <${ErrorBox} error=${versions.error || rolling.error || activating.error} />
    ${rolling.done && rolling.done.deployment && html`<${Notice} kind="good">Rolled back: version ${rolling.done.deployment.version} reactivates version ${versionOf(rolling.done.deployment.reactivates) ?? "the earlier one"}.<//>`}
    ${!versions.data && !versions.error && html`<${Loading} what="deployments" />`}
    ${versions.data && !list.length && html`<p class="muted" role="status">No deployment yet in this project.</p>`}
    ${current && html`<${Rollout} key=${current.id} current=${current} />`}
    ${list.length > 0 && html`<${Versions} list=${list} current=${current} onActivate=${activate} busy=${activating.busy} />`}
    <${DeployForm} regions=${regions} chosen=${chosen} setChosen=${setChosen} onDone=${() => versions.reload()} />
  <//>`;
}
