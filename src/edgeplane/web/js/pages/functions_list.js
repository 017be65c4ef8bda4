// The project's edge functions (current version and its status, routes, updated; refreshed
// every few seconds) and the form that deploys one: its code checked on demand, routes one per
// line as the CLI takes them, env as KEY=VALUE lines, limits.
import {
  html, useState, useApi, useAction, useSession, navigate, Page, Card, Table, ErrorBox, Notice, Input, Textarea,
  Button, WriteForm, fmtAgo, fmtTime,
} from "../ui.js";
import {
  FN, fnPath, fnHref, errorAt, unshown, numberOrText, useProjectApi, VersionStatus, RouteList, parseRoutes, parseVars,
} from "./functions_common.js";

const EVERY = 3000;

export default function FunctionList({ query }) {
  const list = useApi(FN, { query: { limit: 1000 }, every: EVERY });
  const items = list.data ? list.data.items : null;
  const deleted = query && query.get("deleted");
  const columns = [
    { key: "name", label: "Function", render: (f) => html`<a href=${fnHref(f.name)}>${f.name}</a>` },
    { key: "version", label: "Version", class: "num", render: (f) => (f.current ? `v${f.current.version}` : "—") },
    { key: "status", label: "Status", render: (f) => (f.current ? html`<${VersionStatus} status=${f.current.status} />` : "—") },
    { key: "routes", label: "Routes", render: (f) => html`<${RouteList} routes=${f.current && f.current.routes} />` },
    { key: "updated_at", label: "Updated", class: "sc-nowrap", render: (f) => html`<span title=${fmtTime(f.updated_at)}>${fmtAgo(f.updated_at)}</span>` },
  ];
  return html`<${Page} title="Functions"
      subtitle="Edge functions: versioned JavaScript handlers the edge nodes run for the routes they answer.">
    <${Card} title="Functions" id="fn-list" wide>
      <${ErrorBox} error=${list.error} />
      ${deleted && html`<${Notice} kind="good">Function ${deleted} deleted: its routes leave every node.<//>`}
      <${Table} columns=${columns} rows=${items} rowKey=${(f) => f.name} caption="The project's functions"
        empty="No function yet: deploy one below." />
      <p class="hint">Refreshed every ${EVERY / 1000} s.</p>
    <//>
    <${DeployForm} onDeployed=${(name) => navigate(fnHref(name))} />
  <//>`;
}

const FIELDS = ["name", "code", "routes", "env", "limits"];

// The API's reason for a route ("routes.1.pattern: ...") as the line of the field it is on.
function routeError(err) {
  const reason = errorAt(err, "routes");
  const m = reason && /^(\d+)(?:\.\w+)?: (.*)$/s.exec(reason);
  // (a problem naming one field may repeat it in its reason: "routes.1.pattern: ...")
  return m ? `line ${Number(m[1]) + 1}: ${m[2].replace(/^routes\.\d+(\.\w+)?: /, "")}` : reason;
}
const EXAMPLE = `export default {
  async fetch(request, env) {
    return new Response("hello from the edge");
  },
};
`;

function DeployForm({ onDeployed }) {
  const { canWrite } = useSession();
  const call = useProjectApi();
  const [f, setF] = useState({ name: "", code: EXAMPLE, routes: "", env: "", timeout: "", memory: "" });
  const set = (k) => (v) => setF((old) => ({ ...old, [k]: v }));
  const [check, checked] = useAction(() => call("POST", `${FN}/check`, { body: { code: f.code } }));
  const [deploy, state] = useAction(async () => {
    const limits = { timeout_ms: numberOrText(f.timeout), memory_mb: numberOrText(f.memory) };
    const routes = parseRoutes(f.routes);
    const env = parseVars(f.env);
    const body = {
      code: f.code,
      routes: routes.length ? routes : undefined,
      env: Object.keys(env).length ? env : undefined,
      limits: limits.timeout_ms === undefined && limits.memory_mb === undefined ? undefined : limits,
    };
    return call("PUT", fnPath(f.name.trim() || "-"), { body });
  });
  const submit = async () => {
    const out = await deploy();
    if (out) onDeployed(out.function.name);
  };
  const err = state.error;
  const c = checked.done;
  const checkText = c && (c.ok ? "ok" : `${c.line !== null && c.line !== undefined ? `line ${c.line}, column ${c.column}: ` : ""}${c.message}`);
  return html`<${Card} title="Deploy a function" id="fn-deploy" wide>
    <p class="muted">A new version rolls out to one edge node first (canary), then to the rest; deploying an existing
      name makes its next version. Secrets are set with <code>edgeplane function deploy --secret</code> or the API.</p>
    <${WriteForm} label="Deploy a function" onSubmit=${submit}>
      <div class="form-row">
        <${Input} label="Name" name="fn-name" value=${f.name} onValue=${set("name")} autocomplete="off"
          error=${errorAt(err, "name")} hint="Lower-case letters, digits and -." />
      </div>
      <${Textarea} label="Code" name="fn-code" class="fn-code mono" rows="12" spellcheck="false" value=${f.code}
        onValue=${(v) => { set("code")(v); checked.reset(); }} error=${errorAt(err, "code")}
        hint="An ES module: export default { async fetch(request, env, ctx) { … } }." />
      <div class="actions fn-check">
        <${Button} busy=${checked.busy} onClick=${() => check()}>Check<//>
        ${c && html`<span class=${c.ok ? "fn-ok" : "fn-bad"} role="status" aria-label="Check result">${checkText}</span>`}
        <${ErrorBox} error=${checked.error} />
      </div>
      <div class="form-row">
        <${Textarea} label="Routes" name="fn-routes" class="mono" rows="3" value=${f.routes} onValue=${set("routes")}
          error=${routeError(err)} placeholder="shop.example.com/api/*@GET,POST"
          hint="One per line: HOST/PATH[@METHODS]; HOST a domain of the project or *; * only last." />
        <${Textarea} label="Environment" name="fn-env" class="mono" rows="3" value=${f.env} onValue=${set("env")}
          error=${errorAt(err, "env")} placeholder="REGION_LABEL=eu" hint="KEY=VALUE, one per line." />
      </div>
      <div class="form-row">
        <${Input} label="Timeout (ms)" name="fn-timeout" type="number" min="1" value=${f.timeout} onValue=${set("timeout")}
          error=${errorAt(err, "limits.timeout_ms")} hint="Empty: the default (or the current version's)." />
        <${Input} label="Memory (MiB)" name="fn-memory" type="number" min="8" value=${f.memory} onValue=${set("memory")}
          error=${errorAt(err, "limits.memory_mb")} hint="The isolate's heap limit; empty: the default." />
      </div>
      <${ErrorBox} error=${unshown(err, FIELDS)} />
      <div class="actions">
        <button type="submit" class="btn primary" disabled=${!canWrite || state.busy}>Deploy</button>
      </div>
    <//>
  <//>`;
}
