// A load balancer's backends: weight, backup, drain, disable / enable, remove, add; and what
// every edge node's health checks see of each (polled every 2 s).
import {
  html, useState, useAction, useStoredForm, api, fieldError, Card, Table, ErrorBox, Notice, Input, Checkbox, Button,
  WriteForm, Badge, fmtAgo, fmtMs,
} from "../ui.js";
import { lbPath, backendPath, backendKey as keyOf, restOf } from "./load_balancers_common.js";

function WeightForm({ lb, backend, onChanged }) {
  const [{ weight }, set] = useStoredForm({ weight: String(backend.weight) });
  const [save, state] = useAction(async () => {
    const body = { weight: weight === "" ? null : Number(weight) };
    await api("PATCH", backendPath(lb.id, keyOf(backend)), { body, project: lb.project });
    onChanged();
  });
  return html`<${WriteForm} class="form lb-weight" label=${`Weight of ${backend.address}`} onSubmit=${() => save()}>
    <${Input} label=${`Weight of ${backend.address}`} name="weight" type="number" value=${weight} onValue=${(w) => set({ weight: w })}
      error=${fieldError(state.error, "weight")} />
    <${Button} type="submit" kind="small" write busy=${state.busy}>Save weight<//>
    <${ErrorBox} error=${restOf(state.error, ["weight"])} />
  <//>`;
}

function Actions({ lb, backend, onChanged }) {
  const key = keyOf(backend);
  const [act, state] = useAction(async (method, suffix, body) => {
    await api(method, backendPath(lb.id, key) + suffix, { body, project: lb.project });
    onChanged();
  });
  const patch = (body) => act("PATCH", "", body);
  return html`<div class="lb-actions">
    ${backend.state !== "draining" &&
    html`<${Button} kind="small" write busy=${state.busy} aria-label=${`Drain ${key}`} onClick=${() => act("POST", "/drain")}>Drain<//>`}
    ${backend.state === "disabled"
      ? html`<${Button} kind="small" write busy=${state.busy} aria-label=${`Enable ${key}`} onClick=${() => patch({ state: "active" })}>Enable<//>`
      : html`<${Button} kind="small" write busy=${state.busy} aria-label=${`Disable ${key}`} onClick=${() => patch({ state: "disabled" })}>Disable<//>`}
    ${backend.state === "draining" &&
    html`<${Button} kind="small" write busy=${state.busy} aria-label=${`Return ${key} to rotation`} onClick=${() => patch({ state: "active" })}>Undrain<//>`}
    <${Button} kind="small" write busy=${state.busy} aria-label=${backend.backup ? `Make ${key} a primary` : `Make ${key} a backup`}
      onClick=${() => patch({ backup: !backend.backup })}>${backend.backup ? "Make primary" : "Make backup"}<//>
    <${Button} kind="small danger" write busy=${state.busy} aria-label=${`Remove ${key}`} onClick=${() => act("DELETE", "")}>Remove<//>
    <${ErrorBox} error=${state.error} />
  </div>`;
}

export function Backends({ lb, health, onChanged }) {
  const byKey = {};
  for (const h of health || []) byKey[h.backend] = h;
  const columns = [
    { key: "address", label: "Backend", render: (b) => html`<span class="mono">${keyOf(b)}</span>` },
    { key: "role", label: "Role", render: (b) => (b.backup ? html`<${Badge} state="warn">backup<//>` : "primary") },
    { key: "state", label: "Admin state", render: (b) => html`<${Badge} state=${b.state}>${b.state}<//>` },
    {
      key: "health",
      label: "Health",
      render: (b) => {
        const h = byKey[keyOf(b)];
        return h ? html`<${Badge} state=${h.state}>${h.state}<//>` : html`<span class="muted">…</span>`;
      },
    },
    { key: "weight", label: "Weight", render: (b) => html`<${WeightForm} key=${keyOf(b)} lb=${lb} backend=${b} onChanged=${onChanged} />` },
    { key: "actions", label: "Actions", render: (b) => html`<${Actions} lb=${lb} backend=${b} onChanged=${onChanged} />` },
  ];
  return html`<${Card} title="Backends" id="lb-backends" wide>
    <${Table} columns=${columns} rows=${lb.backends} rowKey=${keyOf} caption=${`${lb.backends.length} backends`}
      empty="No backend yet: add one below." />
    <${AddBackend} lb=${lb} onChanged=${onChanged} />
  <//>`;
}

function AddBackend({ lb, onChanged }) {
  const [address, setAddress] = useState("");
  const [weight, setWeight] = useState("100");
  const [backup, setBackup] = useState(false);
  const [add, state] = useAction(async () => {
    const body = { address: address.trim(), weight: weight === "" ? null : Number(weight), backup };
    await api("POST", `${lbPath(lb.id)}/backends`, { body, project: lb.project });
    setAddress("");
    setWeight("100");
    setBackup(false);
    onChanged();
  });
  const err = state.error;
  return html`<h3 id="lb-add-backend">Add a backend</h3>
    <${WriteForm} label="Add a backend" onSubmit=${() => add()}>
      <div class="form-row">
        <${Input} label="Address" name="address" value=${address} onValue=${setAddress} placeholder="10.0.0.5:8080"
          hint="An inventory server id, host:port or an http(s) URL." error=${fieldError(err, "address")} />
        <${Input} label="Weight" name="weight" type="number" value=${weight} onValue=${setWeight} error=${fieldError(err, "weight")} />
        <${Checkbox} label="Backup (takes traffic only while every primary is down)" name="backup" checked=${backup} onValue=${setBackup}
          error=${fieldError(err, "backup")} />
      </div>
      <${ErrorBox} error=${restOf(err, ["address", "weight", "backup"])} />
      <${Button} type="submit" kind="primary" write busy=${state.busy}>Add backend<//>
    <//>`;
}

// Per backend, per edge node: state, the reason of the last check, latency, times.
export function HealthPerNode({ health, error }) {
  const rows = [];
  for (const b of health || []) {
    if (!b.nodes.length) rows.push({ b, n: null });
    for (const n of b.nodes) rows.push({ b, n });
  }
  const columns = [
    { key: "backend", label: "Backend", render: (r) => html`<span class="mono">${r.b.backend}</span>` },
    { key: "node", label: "Edge node", render: (r) => (r.n ? r.n.node : html`<span class="muted">no report yet</span>`) },
    { key: "state", label: "State", render: (r) => html`<${Badge} state=${r.n ? r.n.state : "unknown"}>${r.n ? r.n.state : "unknown"}<//>` },
    { key: "reason", label: "Reason", render: (r) => (r.n && r.n.reason ? r.n.reason : r.b.admin_state === "disabled" ? "disabled: not checked" : "—") },
    { key: "latency", label: "Latency", class: "num", render: (r) => (r.n ? fmtMs(r.n.latency_ms) : "—") },
    { key: "checked", label: "Checked", render: (r) => (r.n ? fmtAgo(r.n.checked_at) : "—") },
    { key: "changed", label: "State since", render: (r) => (r.n ? fmtAgo(r.n.changed_at) : "—") },
  ];
  return html`<${Card} title="Health per edge node" id="lb-health" wide>
    <p class="hint">What each edge node's active checks last saw; refreshed every 2 s.</p>
    <${ErrorBox} error=${error} />
    ${health && !health.length && html`<${Notice}>No backend to check.<//>`}
    <${Table} columns=${columns} rows=${health ? rows : null} rowKey=${(r) => `${r.b.backend}@${r.n ? r.n.node_id : ""}`}
      caption="Backend health per edge node" rowClass=${(r) => (r.n && r.n.state === "down" ? "lb-down" : undefined)} />
  <//>`;
}
