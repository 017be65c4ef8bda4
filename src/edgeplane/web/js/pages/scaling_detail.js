// One scaling group (#/scaling/<id>): its details, its instances and its history of actions
// with their steps, refreshed every few seconds while the page is open; setting its size (a
// manual action), its bounds, resuming it after it stopped, and deleting it.
import {
  html, useState, useApi, useAction, useStoredForm, navigate, Page, Card, Grid, Table, ErrorBox, Notice, Loading, Input,
  Checkbox, Button, WriteForm, Stat, fmtAgo, fmtTime, fmtNum,
} from "../ui.js";
import {
  sgPath, lbHref, errorAt, unshown, numberOrText, useProjectApi, GroupStatus, PolicyList, MetricsNow,
  InstanceState, ActionStatus, Timeline, words,
} from "./scaling_common.js";

const EVERY = 3000;

export default function ScalingGroup({ id }) {
  const group = useApi(sgPath(id), { every: EVERY });
  const [ended, setEnded] = useState(false);
  const instances = useApi(`${sgPath(id)}/instances`, { query: { ended: ended || undefined }, every: EVERY });
  const [cursor, setCursor] = useState(null); // null: the newest actions, polled
  const history = useApi(`${sgPath(id)}/actions`, { query: { limit: 20, cursor: cursor || undefined }, every: cursor ? undefined : EVERY });
  const changed = () => { group.reload(); instances.reload(); history.reload(); };
  const g = group.data;
  if (!g) {
    return html`<${Page} title="Scaling group">
      <p><a href="#/scaling">All scaling groups</a></p>
      ${group.error ? html`<${ErrorBox} error=${group.error} />` : html`<${Loading} what="the scaling group" />`}
    <//>`;
  }
  return html`<${Page} title=${`Scaling group ${g.name}`}
      subtitle=${`${g.id} · backs load balancer ${g.load_balancer} · ${g.driver} driver · refreshed every ${EVERY / 1000} s`}
      actions=${html`<a class="btn" href="#/scaling">All scaling groups</a>
        ${g.status === "stopped" && html`<${Resume} group=${g} onChanged=${changed} />`}
        <${Delete} group=${g} />`}>
    <${ErrorBox} error=${group.error} />
    ${g.status === "deleting" && html`<${Notice} kind="warn">Being deleted: its instances drain and are removed, then the group goes.<//>`}
    ${g.status === "stopped" && html`<${Notice} kind="warn">Stopped: ${g.status_detail || `${g.failures} launches failed in a row`}. Resume it (or change it) to try again.<//>`}
    <div class="stats sc-stats">
      <${Stat} label="Serving / desired" value=${`${g.size} / ${g.desired}`} kind=${g.size >= g.desired ? "good" : ""} />
      <${Stat} label="Bounds (min-max)" value=${`${g.min_size}-${g.max_size}`} />
      <${Stat} label=${g.floor > g.min_size ? "Floor now (scheduled)" : "Floor now"} value=${g.floor} />
      <div class="stat"><span class="stat-value"><${GroupStatus} group=${{ ...g, status_detail: "" }} /></span><span class="stat-label">Status</span></div>
    </div>
    <${Grid}>
      <${Details} group=${g} />
      <${Card} title="Size" id="sc-size">
        <${SetSize} key=${g.id} group=${g} onChanged=${changed} />
        <${Bounds} group=${g} onChanged=${changed} />
      <//>
    <//>
    <${Instances} instances=${instances} ended=${ended} setEnded=${setEnded} />
    <${History} history=${history} cursor=${cursor} setCursor=${setCursor} />
  <//>`;
}

function Details({ group: g }) {
  const t = g.template || {};
  const driver = g.driver === "local"
    ? html`local: <code>${t.command}</code>`
    : html`${g.driver}: ${[t.provider, t.size, t.image].filter(Boolean).join(" ")}${t.location ? ` in ${t.location}` : ""}`;
  const facts = [
    ["Status", html`<${GroupStatus} group=${g} />`],
    ["Load balancer", html`<a href=${lbHref(g.load_balancer)}>${g.load_balancer}</a>`],
    ["Data center", g.data_center],
    ["Driver", driver],
    ["Policies", html`<${PolicyList} policies=${g.policies} />`],
    ["Metrics now", html`<${MetricsNow} metrics=${g.metrics} policies=${g.policies} />`],
    g.schedule.length > 0 && ["Schedule", html`<ul class="sc-list">${g.schedule.map((e) => html`<li>${e.name ? `${e.name}: ` : ""}at least ${e.min_size} from <code>${e.cron}</code> for ${e.duration_minutes} min (${e.timezone})</li>`)}</ul>`],
    ["Stabilisation", `scale out ${fmtNum(g.scale_out_stabilization_s)} s, scale in ${fmtNum(g.scale_in_stabilization_s)} s, tolerance ${fmtNum(g.tolerance)}`],
    ["Cooldown", `${fmtNum(g.cooldown_s)} s`],
    ["Timings", `metrics over ${fmtNum(g.metric_window_s)} s, healthy within ${fmtNum(g.health_timeout_s)} s, drain ${fmtNum(g.drain_s)} s`],
    ["Failed launches", `${g.failures} in a row (stops at ${g.max_failures})`],
    ["Last action", g.last_action ? html`${words(g.last_action.kind)} ${g.last_action.from_size} → ${g.last_action.to_size}, <${ActionStatus} status=${g.last_action.status} />` : "none"],
    ["Created", html`<span title=${fmtTime(g.created_at)}>${fmtAgo(g.created_at)}</span>`],
  ].filter(Boolean);
  return html`<${Card} title="Details" id="sc-details">
    <dl class="facts">${facts.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
  <//>`;
}

function SetSize({ group, onChanged }) {
  const call = useProjectApi();
  const [desired, setDesired] = useState(String(group.desired));
  const [save, state] = useAction(async () => {
    const out = await call("PATCH", sgPath(group.id), { body: { desired: numberOrText(desired) ?? "" } });
    onChanged();
    return out;
  });
  const err = state.error;
  return html`<${WriteForm} label="Set size" onSubmit=${() => save()}>
    <div class="form-row">
      <${Input} label="Desired size" name="sc-desired" type="number" min="0" value=${desired} onValue=${setDesired}
        error=${errorAt(err, "desired")} hint=${`Now: ${group.desired}. A manual action, within ${group.min_size}-${group.max_size}; the policies go on from there.`} />
    </div>
    <${ErrorBox} error=${unshown(err, ["desired"])} />
    ${state.done && html`<${Notice} kind="good">Desired size set to ${state.done.desired}.<//>`}
    <div class="actions"><${Button} type="submit" kind="primary" write busy=${state.busy}>Set size<//></div>
  <//>`;
}

function Bounds({ group, onChanged }) {
  const call = useProjectApi();
  const [{ min, max }, set] = useStoredForm({ min: String(group.min_size), max: String(group.max_size) });
  const [save, state] = useAction(async () => {
    const out = await call("PATCH", sgPath(group.id), { body: { min_size: numberOrText(min), max_size: numberOrText(max) } });
    onChanged();
    return out;
  });
  const err = state.error;
  return html`<h3>Bounds</h3>
    <${WriteForm} label="Bounds" onSubmit=${() => save()}>
      <div class="form-row">
        <${Input} label="Minimum size" name="sc-min" type="number" min="0" value=${min} onValue=${(v) => set({ min: v })} error=${errorAt(err, "min_size")} />
        <${Input} label="Maximum size" name="sc-max" type="number" min="1" value=${max} onValue=${(v) => set({ max: v })} error=${errorAt(err, "max_size")} />
      </div>
      <p class="hint">The desired size is kept within them.</p>
      <${ErrorBox} error=${unshown(err, ["min_size", "max_size"])} />
      <div class="actions"><${Button} type="submit" kind="primary" write busy=${state.busy}>Save bounds<//></div>
    <//>`;
}

function Resume({ group, onChanged }) {
  const call = useProjectApi();
  const [resume, state] = useAction(async () => {
    const out = await call("POST", `${sgPath(group.id)}/resume`);
    onChanged();
    return out;
  });
  return html`<${Button} kind="primary" write busy=${state.busy} onClick=${() => resume()}>Resume<//>
    <${ErrorBox} error=${state.error} />`;
}

// Two steps, as the other pages delete; 202 (instances to drain first) or 204 (gone at once)
// both lead to the list, which shows the group until it has gone.
function Delete({ group }) {
  const call = useProjectApi();
  const [sure, setSure] = useState(false);
  const [remove, state] = useAction(async () => {
    const out = await call("DELETE", sgPath(group.id));
    navigate(`#/scaling?${out ? "deleting" : "deleted"}=${encodeURIComponent(group.id)}`);
  });
  const n = group.instances.length;
  if (!sure) return html`<${Button} kind="danger" write onClick=${() => setSure(true)}>Delete…<//>`;
  return html`<span class="sc-confirm" role="group" aria-label=${`Delete scaling group ${group.name}`}>
    <span>${n ? `Its ${n} instance${n === 1 ? "" : "s"} drain and are removed first.` : "It has no instance."}</span>
    <${Button} kind="danger" write busy=${state.busy} onClick=${() => remove()}>Confirm: delete ${group.name}<//>
    <${Button} onClick=${() => { setSure(false); state.reset(); }}>Keep it<//>
    <${ErrorBox} error=${state.error} />
  </span>`;
}

function Instances({ instances, ended, setEnded }) {
  const columns = [
    { key: "id", label: "Instance", render: (i) => html`<span class="mono">${i.id}</span>` },
    { key: "state", label: "State", render: (i) => html`<${InstanceState} state=${i.state} />` },
    { key: "address", label: "Address", render: (i) => (i.address ? html`<span class="mono">${i.address}</span>` : "—") },
    { key: "cpu", label: "CPU %", class: "num", render: (i) => (i.cpu_percent === null || i.cpu_percent === undefined ? "—" : `${fmtNum(i.cpu_percent, 1)} %`) },
    { key: "serving_at", label: "Serving since", class: "sc-nowrap", render: (i) => (i.serving_at ? html`<span title=${fmtTime(i.serving_at)}>${fmtAgo(i.serving_at)}</span>` : "—") },
    { key: "detail", label: "Detail", render: (i) => i.detail || "—" },
  ];
  if (ended) columns.push({ key: "ended_at", label: "Ended", render: (i) => (i.ended_at ? html`<span title=${fmtTime(i.ended_at)}>${fmtAgo(i.ended_at)}</span>` : "—") });
  return html`<${Card} title="Instances" id="sc-instances" wide
      actions=${html`<${Checkbox} label="Show ended instances" name="sc-ended" checked=${ended} onValue=${setEnded} />`}>
    <${ErrorBox} error=${instances.error} />
    <${Table} columns=${columns} rows=${instances.data} rowKey=${(i) => i.id}
      caption=${ended ? "Every instance of the group, oldest first" : "The group's live instances, oldest first"}
      empty=${ended ? "No instance yet." : "No live instance."} />
  <//>`;
}

function History({ history, cursor, setCursor }) {
  const items = history.data ? history.data.items : null;
  const next = history.data && history.data.next_cursor;
  const columns = [
    { key: "started_at", label: "Started", class: "sc-nowrap", render: (a) => html`<span title=${fmtTime(a.started_at)}>${fmtAgo(a.started_at)}</span>` },
    { key: "kind", label: "Kind", class: "sc-nowrap", render: (a) => words(a.kind) },
    { key: "trigger", label: "Trigger" },
    { key: "size", label: "Size", class: "num sc-nowrap", render: (a) => `${a.from_size} → ${a.to_size}` },
    { key: "status", label: "Status", render: (a) => html`<${ActionStatus} status=${a.status} />${a.detail ? html`<br /><span class="muted">${a.detail}</span>` : ""}` },
    { key: "duration_s", label: "Duration", class: "num sc-nowrap", render: (a) => (a.duration_s === null || a.duration_s === undefined ? "—" : `${a.duration_s.toFixed(1)} s`) },
    { key: "steps", label: "Steps", render: (a) => html`<${Timeline} action=${a} />` },
  ];
  return html`<${Card} title="History" id="sc-history" wide>
    <p class="hint">Each scaling action, newest first, with each step's time after it was triggered.</p>
    <${ErrorBox} error=${history.error} />
    <${Table} columns=${columns} rows=${items} rowKey=${(a) => a.id} caption="The group's scaling actions"
      empty="No action yet." />
    ${(cursor || next) && html`<div class="actions sc-pager">
      <${Button} disabled=${!cursor} onClick=${() => setCursor(null)}>Newest<//>
      <${Button} disabled=${!next} onClick=${() => setCursor(next)}>Older<//>
    </div>`}
  <//>`;
}
