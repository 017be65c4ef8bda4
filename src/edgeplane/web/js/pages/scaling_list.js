// The project's scaling groups (load balancer, driver, serving / desired, bounds, status,
// policies and metrics now; refreshed every few seconds) and the form that creates one.
import {
  html, useState, useApi, useAction, useSession, navigate, Page, Card, Table, ErrorBox, Notice, Input, Select,
  WriteForm,
} from "../ui.js";
import {
  SG, sgHref, lbHref, errorAt, unshown, numberOrText, useProjectApi, GroupStatus, PolicyList, MetricsNow,
} from "./scaling_common.js";

const EVERY = 3000;

export default function ScalingList({ query }) {
  const list = useApi(SG, { query: { limit: 1000 }, every: EVERY });
  const items = list.data ? list.data.items : null;
  const deleting = query && query.get("deleting");
  const deleted = query && query.get("deleted");
  const gone = deleting && items && !items.some((g) => g.id === deleting);
  const columns = [
    { key: "name", label: "Group", render: (g) => html`<a href=${sgHref(g.id)}>${g.name}</a>${g.name !== g.id ? html` <span class="muted">(${g.id})</span>` : ""}` },
    { key: "load_balancer", label: "Load balancer", render: (g) => html`<a href=${lbHref(g.load_balancer)}>${g.load_balancer}</a>` },
    { key: "driver", label: "Driver" },
    { key: "size", label: "Serving / desired", class: "num sc-nowrap", render: (g) => `${g.size} / ${g.desired}` },
    { key: "bounds", label: "Bounds", class: "num", render: (g) => `${g.min_size}-${g.max_size}` },
    { key: "status", label: "Status", render: (g) => html`<${GroupStatus} group=${g} />` },
    { key: "policies", label: "Policies", render: (g) => html`<${PolicyList} policies=${g.policies} />` },
    { key: "metrics", label: "Metrics now", render: (g) => html`<${MetricsNow} metrics=${g.metrics} policies=${g.policies} />` },
  ];
  return html`<${Page} title="Scaling"
      subtitle="Scaling groups: a load balancer's backends started and stopped by a driver as its metrics ask.">
    <${Card} title="Scaling groups" id="sc-list" wide>
      <${ErrorBox} error=${list.error} />
      ${deleted && html`<${Notice} kind="good">Scaling group ${deleted} deleted.<//>`}
      ${deleting && (gone
        ? html`<${Notice} kind="good">Scaling group ${deleting} deleted: its instances were drained and removed.<//>`
        : html`<${Notice}>Deleting scaling group ${deleting}: its instances drain and are removed, then it goes.<//>`)}
      <${Table} columns=${columns} rows=${items} rowKey=${(g) => g.id} caption="The project's scaling groups"
        empty="No scaling group yet: create one below." />
      <p class="hint">Refreshed every ${EVERY / 1000} s.</p>
    <//>
    <${CreateForm} groups=${items} onCreated=${(g) => navigate(sgHref(g.id))} />
  <//>`;
}

const FIELDS = ["id", "load_balancer", "data_center", "template", "min_size", "max_size", "policies"];

function CreateForm({ groups, onCreated }) {
  const { canWrite } = useSession();
  const call = useProjectApi();
  const lbs = useApi("infrastructure/loadbalancer", { query: { limit: 1000 } });
  const dcs = useApi("infrastructure/datacenters", { query: { limit: 1000 } });
  const [f, setF] = useState({ id: "", lb: "", dc: "", command: "", min: "1", max: "4", target: "50" });
  const set = (k) => (v) => setF((old) => ({ ...old, [k]: v }));
  const [create, state] = useAction(async () => {
    const target = numberOrText(f.target);
    const body = {
      id: f.id.trim() || undefined,
      load_balancer: f.lb || undefined,
      data_center: f.dc || undefined,
      driver: "local",
      template: { command: f.command.trim() },
      min_size: numberOrText(f.min),
      max_size: numberOrText(f.max),
      policies: target === undefined ? [] : [{ type: "target_tracking", metric: "requests_per_second", target }],
    };
    return call("POST", SG, { body });
  });
  const submit = async () => {
    const g = await create();
    if (g) onCreated(g);
  };
  const err = state.error;
  const scaledBy = Object.fromEntries((groups || []).map((g) => [g.load_balancer, g.id]));
  const lbItems = lbs.data ? lbs.data.items : [];
  const dcItems = dcs.data ? dcs.data.items : [];
  const lbOptions = [["", lbs.data ? "Choose a load balancer" : "Loading…"],
    ...lbItems.map((lb) => [lb.id, `${lb.name}${lb.name !== lb.id ? ` (${lb.id})` : ""}${scaledBy[lb.id] ? `: scaled by ${scaledBy[lb.id]}` : ""}`])];
  const dcOptions = [["", dcs.data ? "Choose a data center" : "Loading…"], ...dcItems.map((dc) => [dc.id, `${dc.name} (${dc.id})`])];
  return html`<${Card} title="Create a scaling group" id="sc-create" wide>
    <p class="muted">The group starts its minimum of instances at once, then keeps the requests per instance near
      the target. Its instances are origin processes on the control plane's machine (the local driver), added to the
      load balancer as backends that take traffic once the edge's health checks pass. Cloud groups are made
      with <code>edgeplane scale group create --driver cloud</code> or the API.</p>
    <${ErrorBox} error=${lbs.error || dcs.error} />
    ${lbs.data && !lbItems.length && html`<${Notice} kind="warn">No load balancer in this project: <a href="#/load-balancers">create one</a> first.<//>`}
    ${dcs.data && !dcItems.length && html`<${Notice} kind="warn">No data center in this project: <a href="#/inventory/datacenters">create one</a> first (the instances count in its capacity).<//>`}
    <${WriteForm} label="Create a scaling group" onSubmit=${submit}>
      <div class="form-row">
        <${Input} label="ID (optional)" name="sc-id" value=${f.id} onValue=${set("id")} error=${errorAt(err, "id")}
          hint="Lower-case letters, digits, . _ -; chosen when left empty." />
        <${Select} label="Load balancer" name="sc-lb" value=${f.lb} onValue=${set("lb")} options=${lbOptions}
          error=${errorAt(err, "load_balancer")} hint="The instances become its backends." />
        <${Select} label="Data center" name="sc-dc" value=${f.dc} onValue=${set("dc")} options=${dcOptions}
          error=${errorAt(err, "data_center")} hint="Where the instances count." />
      </div>
      <${Input} label="Command" name="sc-command" value=${f.command} onValue=${set("command")} autocomplete="off"
        placeholder="edgeplane demo-origin --port {port}" error=${errorAt(err, "template.command") || errorAt(err, "template")}
        hint="Run on the control plane's machine for each instance (split as a shell would, never run by one); {port} is the port the driver chose for it." />
      <div class="form-row">
        <${Input} label="Minimum size" name="sc-min" type="number" min="0" value=${f.min} onValue=${set("min")} error=${errorAt(err, "min_size")} />
        <${Input} label="Maximum size" name="sc-max" type="number" min="1" value=${f.max} onValue=${set("max")} error=${errorAt(err, "max_size")} />
        <${Input} label="Target requests/s per instance" name="sc-target" type="number" step="any" value=${f.target} onValue=${set("target")}
          error=${errorAt(err, "policies.0.target_tracking.target") || errorAt(err, "policies")} hint="Target tracking; empty: no policy (the size changes only when set)." />
      </div>
      <${ErrorBox} error=${unshown(err, FIELDS)} />
      <div class="actions">
        <button type="submit" class="btn primary" disabled=${!canWrite || state.busy}>Create scaling group</button>
      </div>
    <//>
  <//>`;
}
