// One load balancer: backends, health per edge node (live), algorithm and failover, the health
// check, traffic; and deleting it.
import {
  html, useState, useApi, useAction, useSession, api, fieldError, navigate, Page, Card, Grid, ErrorBox,
  Loading, Notice, Input, Select, Button, WriteForm, Stat,
} from "../ui.js";
import { lbPath, ALGORITHMS, algorithmName, summarise, HealthBadge, restOf } from "./load_balancers_common.js";
import { Backends, HealthPerNode } from "./load_balancers_backends.js";
import { Traffic } from "./load_balancers_traffic.js";

export default function LoadBalancerDetail({ id }) {
  const { project } = useSession();
  const lb = useApi(lbPath(id));
  const health = useApi(`${lbPath(id)}/health`, { every: 2000 });
  const changed = () => { lb.reload(); health.reload(); };
  if (!lb.data) {
    return html`<${Page} title="Load balancer">
      <p><a href="#/load-balancers">All load balancers</a></p>
      ${lb.error ? html`<${ErrorBox} error=${lb.error} />` : html`<${Loading} what="the load balancer" />`}
    <//>`;
  }
  const data = lb.data;
  const s = summarise(health.data);
  return html`<${Page} title=${`Load balancer ${data.name}`}
      subtitle=${`${data.id} · ${algorithmName(data.algorithm)} · ${data.domains.length ? `serves ${data.domains.join(", ")}` : "serves no domain"}`}
      actions=${html`<a class="btn" href="#/load-balancers">All load balancers</a><${Delete} lb=${data} />`}>
    <${ErrorBox} error=${lb.error} />
    <div class="stats lb-stats">
      <${Stat} label="Backends up / in rotation" value=${s ? `${s.up} / ${s.total}` : "…"} kind=${s && s.state === "healthy" ? "good" : s && s.state === "down" ? "bad" : ""} />
      <${Stat} label="Backends" value=${data.backends.length} />
      <${Stat} label="Backups" value=${data.backends.filter((b) => b.backup).length} />
      <div class="stat"><span class="stat-value">${s ? html`<${HealthBadge} state=${s.state} />` : "…"}</span><span class="stat-label">State</span></div>
    </div>
    <${Backends} lb=${data} health=${health.data} onChanged=${changed} />
    <${HealthPerNode} health=${health.data} error=${health.error} />
    <${Grid}>
      <${Settings} lb=${data} onChanged=${changed} />
      <${HealthCheck} lb=${data} onChanged=${changed} />
    <//>
    <${Traffic} lb=${data} project=${project} />
  <//>`;
}

function Delete({ lb }) {
  const [sure, setSure] = useState(false);
  const [remove, state] = useAction(async () => {
    await api("DELETE", lbPath(lb.id), { project: lb.project });
    navigate("#/load-balancers");
  });
  return html`${sure
      ? html`<${Button} kind="danger" write busy=${state.busy} onClick=${() => remove()}>Confirm: delete ${lb.name}<//>
          <${Button} onClick=${() => setSure(false)}>Keep it<//>`
      : html`<${Button} kind="danger" write onClick=${() => setSure(true)}>Delete…<//>`}
    <${ErrorBox} error=${state.error} />`;
}

const num = (v) => (v === "" ? null : Number(v));

function Settings({ lb, onChanged }) {
  const [algorithm, setAlgorithm] = useState(lb.algorithm);
  const [connect, setConnect] = useState(String(lb.connect_timeout_s));
  const [read, setRead] = useState(String(lb.read_timeout_s));
  const [retries, setRetries] = useState(String(lb.retries));
  const [save, state] = useAction(async () => {
    const body = { algorithm, connect_timeout_s: num(connect), read_timeout_s: num(read), retries: num(retries) };
    await api("PATCH", lbPath(lb.id), { body, project: lb.project });
    onChanged();
  });
  const err = state.error;
  const backups = lb.backends.filter((b) => b.backup);
  return html`<${Card} title="Algorithm and failover" id="lb-settings">
    <${WriteForm} label="Algorithm and failover" onSubmit=${() => save()}>
      <${Select} label="Algorithm" name="algorithm" value=${algorithm} onValue=${setAlgorithm} options=${ALGORITHMS}
        error=${fieldError(err, "algorithm")} hint="Weights apply with every algorithm." />
      <div class="form-row">
        <${Input} label="Connect timeout (s)" name="connect_timeout_s" type="number" step="any" value=${connect} onValue=${setConnect}
          error=${fieldError(err, "connect_timeout_s")} hint="Before trying the next backend." />
        <${Input} label="Read timeout (s)" name="read_timeout_s" type="number" step="any" value=${read} onValue=${setRead}
          error=${fieldError(err, "read_timeout_s")} />
        <${Input} label="Retries on the next backend" name="retries" type="number" value=${retries} onValue=${setRetries}
          error=${fieldError(err, "retries")} hint="For idempotent requests." />
      </div>
      <p class="hint">Failover: ${backups.length
        ? `${backups.map((b) => b.address).join(", ")} take${backups.length === 1 ? "s" : ""} traffic only while every primary is down.`
        : "no backup backend; mark one as a backup in the backends table."}</p>
      <${ErrorBox} error=${restOf(err, ["algorithm", "connect_timeout_s", "read_timeout_s", "retries"])} />
      ${state.done && html`<${Notice} kind="good">Saved.<//>`}
      <${Button} type="submit" kind="primary" write busy=${state.busy}>Save settings<//>
    <//>
  <//>`;
}

const CHECK_FIELDS = ["protocol", "path", "interval_s", "timeout_s", "healthy_threshold", "unhealthy_threshold", "expected_status"];

function HealthCheck({ lb, onChanged }) {
  const hc = lb.health_check;
  const [form, setForm] = useState(Object.fromEntries(CHECK_FIELDS.map((k) => [k, String(hc[k])])));
  const set = (k) => (v) => setForm({ ...form, [k]: v });
  const [save, state] = useAction(async () => {
    const body = {
      protocol: form.protocol,
      path: form.path,
      interval_s: num(form.interval_s),
      timeout_s: num(form.timeout_s),
      healthy_threshold: num(form.healthy_threshold),
      unhealthy_threshold: num(form.unhealthy_threshold),
      expected_status: form.expected_status,
    };
    await api("PUT", `${lbPath(lb.id)}/health-check`, { body, project: lb.project });
    onChanged();
  });
  const err = state.error;
  const f = (k) => fieldError(err, k);
  return html`<${Card} title="Health check" id="lb-health-check">
    <${WriteForm} label="Health check" onSubmit=${() => save()}>
      <div class="form-row">
        <${Select} label="Protocol" name="protocol" value=${form.protocol} onValue=${set("protocol")} options=${["http", "https", "tcp"]} error=${f("protocol")} />
        <${Input} label="Path" name="path" value=${form.path} onValue=${set("path")} error=${f("path")} disabled=${form.protocol === "tcp"} />
        <${Input} label="Expected status" name="expected_status" value=${form.expected_status} onValue=${set("expected_status")}
          error=${f("expected_status")} hint="A status or a range, e.g. 200-399." />
      </div>
      <div class="form-row">
        <${Input} label="Interval (s)" name="interval_s" type="number" step="any" value=${form.interval_s} onValue=${set("interval_s")} error=${f("interval_s")} />
        <${Input} label="Timeout (s)" name="timeout_s" type="number" step="any" value=${form.timeout_s} onValue=${set("timeout_s")} error=${f("timeout_s")} />
      </div>
      <div class="form-row">
        <${Input} label="Healthy threshold" name="healthy_threshold" type="number" value=${form.healthy_threshold}
          onValue=${set("healthy_threshold")} error=${f("healthy_threshold")} hint="Successes to mark up." />
        <${Input} label="Unhealthy threshold" name="unhealthy_threshold" type="number" value=${form.unhealthy_threshold}
          onValue=${set("unhealthy_threshold")} error=${f("unhealthy_threshold")} hint="Failures to mark down." />
      </div>
      <${ErrorBox} error=${restOf(err, CHECK_FIELDS)} />
      ${state.done && html`<${Notice} kind="good">Saved.<//>`}
      <${Button} type="submit" kind="primary" write busy=${state.busy}>Save health check<//>
    <//>
  <//>`;
}
