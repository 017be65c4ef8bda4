// The project's load balancers (domains served, algorithm, backends up / total, state) and the
// form that creates one.
import {
  html, useState, useApi, useAction, useSession, api, fieldError, navigate, Page, Card, Table,
  ErrorBox, Notice, Input, Select, Checkbox, Button, WriteForm,
} from "../ui.js";
import { LB, lbPath, ALGORITHMS, algorithmName, summarise, HealthBadge, restOf } from "./load_balancers_common.js";

function HealthCells({ lb }) {
  const health = useApi(`${lbPath(lb.id)}/health`, { every: 5000 });
  const s = summarise(health.data);
  if (!s) return html`<span class="muted">${health.error ? "not available" : "…"}</span>`;
  return html`<span class="lb-health-cell">${s.up} / ${s.total} up <${HealthBadge} state=${s.state} /></span>`;
}

export default function LoadBalancerList() {
  const list = useApi(LB, { query: { limit: 1000 } });
  const items = list.data ? list.data.items : null;
  const columns = [
    { key: "name", label: "Name", render: (lb) => html`<a href=${`#/load-balancers/${encodeURIComponent(lb.id)}`}>${lb.name}</a>` },
    { key: "domains", label: "Domains served", render: (lb) => (lb.domains.length ? lb.domains.join(", ") : html`<span class="muted">none</span>`) },
    { key: "algorithm", label: "Algorithm", render: (lb) => algorithmName(lb.algorithm) },
    { key: "health", label: "Backends up / in rotation, state", render: (lb) => html`<${HealthCells} lb=${lb} />` },
  ];
  return html`<${Page} title="Load balancers"
      subtitle="Pools of backends the edge nodes spread requests over, checking their health.">
    <${Card} title="Load balancers" id="lb-list" wide>
      <${ErrorBox} error=${list.error} />
      <${Table} columns=${columns} rows=${items} rowKey=${(lb) => lb.id} caption="The project's load balancers"
        empty="No load balancer yet: create one below." />
    <//>
    <${CreateForm} onCreated=${(lb) => navigate(`#/load-balancers/${encodeURIComponent(lb.id)}`)} />
  <//>`;
}

const emptyRow = () => ({ address: "", weight: "100", backup: false });

function CreateForm({ onCreated }) {
  const { canWrite, project } = useSession();
  const domains = useApi("infrastructure/domains", { query: { limit: 1000 } });
  const [name, setName] = useState("");
  const [domain, setDomain] = useState("");
  const [algorithm, setAlgorithm] = useState("round_robin");
  const [rows, setRows] = useState([emptyRow(), emptyRow()]);
  const [partial, setPartial] = useState(null); // created, but the domain was refused
  const setRow = (i, patch) => setRows(rows.map((r, n) => (n === i ? { ...r, ...patch } : r)));
  const [create, state] = useAction(async () => {
    const body = {
      name: name.trim() || undefined,
      algorithm,
      backends: rows
        .filter((r) => r.address.trim() || r.weight !== "100" || r.backup)
        .map((r) => ({ address: r.address.trim(), weight: r.weight === "" ? null : Number(r.weight), backup: r.backup })),
    };
    const lb = partial || (await api("POST", LB, { body, project }));
    setPartial(lb);
    const wanted = domain.trim().toLowerCase();
    const known = domains.data ? domains.data.domains.map((d) => d.domain || d.name) : [];
    if (wanted && !known.includes(wanted)) {
      await api("POST", "infrastructure/domains", { body: { domain: wanted }, project });
    }
    return lb;
  });
  const submit = async () => {
    const lb = await create();
    if (lb) onCreated(lb);
  };
  const err = state.error;
  return html`<${Card} title="Create a load balancer" id="lb-create" wide>
    <${WriteForm} label="Create a load balancer" onSubmit=${submit}>
      <div class="form-row">
        <${Input} label="Name" name="lb-name" value=${name} onValue=${setName} disabled=${!!partial}
          error=${fieldError(err, "name")} hint="Optional; the id when left empty." />
        <${Input} label="Domain (optional)" name="lb-domain" value=${domain} onValue=${setDomain}
          error=${fieldError(err, "domain")}
          hint="Added to the project if it is not there. The edge serves the project's domains through the load balancer the CDN config names as its origin, or, with no CDN config, through the project's only load balancer." />
        <${Select} label="Algorithm" name="lb-algorithm" value=${algorithm} onValue=${setAlgorithm} options=${ALGORITHMS}
          disabled=${!!partial} error=${fieldError(err, "algorithm")} />
      </div>
      <fieldset class="lb-backend-rows" disabled=${!!partial || !canWrite}>
        <legend>Backends</legend>
        <p class="hint">An inventory server id, host:port or an http(s) URL. Backups take traffic only while every primary is down.</p>
        ${rows.map(
          (r, i) => html`<div class="form-row lb-backend-row" key=${i}>
            <${Input} label=${`Backend ${i + 1} address`} name=${`backend-${i}-address`} value=${r.address}
              onValue=${(v) => setRow(i, { address: v })} placeholder="10.0.0.5:8080"
              error=${fieldError(err, `backends.${i}.address`)} />
            <${Input} label=${`Backend ${i + 1} weight`} name=${`backend-${i}-weight`} type="number" value=${r.weight}
              onValue=${(v) => setRow(i, { weight: v })} error=${fieldError(err, `backends.${i}.weight`)} />
            <${Checkbox} label=${`Backend ${i + 1} is a backup`} name=${`backend-${i}-backup`} checked=${r.backup}
              onValue=${(v) => setRow(i, { backup: v })} error=${fieldError(err, `backends.${i}.backup`)} />
            <${Button} kind="small" write onClick=${() => setRows(rows.filter((_, n) => n !== i))}
              aria-label=${`Remove backend ${i + 1}`}>Remove<//>
          </div>`,
        )}
        <${Button} kind="small" write onClick=${() => setRows([...rows, emptyRow()])}>Add a backend row<//>
      </fieldset>
      ${partial && html`<${Notice} kind="warn">Load balancer ${partial.name} was created; the domain was not added.
        <a href=${`#/load-balancers/${encodeURIComponent(partial.id)}`}>Open it</a> or correct the domain.<//>`}
      <${ErrorBox} error=${restOf(err, ["name", "domain", "algorithm", ...rows.flatMap((_, i) => [`backends.${i}.address`, `backends.${i}.weight`, `backends.${i}.backup`])])} />
      <div class="lb-submit">
        <button type="submit" class="btn primary" disabled=${!canWrite || state.busy}>Create load balancer</button>
      </div>
    <//>
  <//>`;
}
