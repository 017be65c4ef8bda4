// The form that deploys a function version. On the list page it makes a function (or the next
// version of one named: the fields left empty keep the current version's values). On a
// function's page it starts from the current version (code, routes, env, limits, check path)
// and sends every field as shown, so that a line removed there (an env variable, the check
// path) is removed from the new version. Secrets are never shown: they are kept.
import { html, useState, useAction, useSession, Card, ErrorBox, Input, Textarea, Button, WriteForm } from "../ui.js";
import { FN, fnPath, errorAt, unshown, numberOrText, useProjectApi, routeText, parseRoutes, parseVars } from "./functions_common.js";

const FIELDS = ["name", "code", "routes", "env", "limits", "check_path", "message"];

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

const BLANK = { name: "", code: EXAMPLE, routes: "", env: "", timeout: "", memory: "", checkPath: "", message: "" };

// A version as the form's fields.
function fieldsOf(name, v, code) {
  return {
    name,
    code,
    routes: (v.routes || []).map(routeText).join("\n"),
    env: Object.entries(v.env || {}).map(([k, val]) => `${k}=${val}`).join("\n"),
    timeout: String(v.limits.timeout_ms),
    memory: String(v.limits.memory_mb),
    checkPath: v.check_path || "",
    message: "",
  };
}

// The body of PUT /functions/<name>: on a function's page (`whole`) every field as shown;
// otherwise the fields left empty are left out (the current version's, if there is one).
function bodyOf(f, whole) {
  const routes = parseRoutes(f.routes);
  const env = parseVars(f.env);
  const limits = { timeout_ms: numberOrText(f.timeout), memory_mb: numberOrText(f.memory) };
  const anyLimit = limits.timeout_ms !== undefined || limits.memory_mb !== undefined;
  const checkPath = f.checkPath.trim();
  return {
    code: f.code,
    routes: whole || routes.length ? routes : undefined,
    env: whole || Object.keys(env).length ? env : undefined,
    limits: anyLimit ? limits : undefined,
    check_path: whole || checkPath ? checkPath : undefined,
    message: f.message.trim() || undefined,
  };
}

// `current`: the function's current version and `code` its code (a function's page), or none
// (the list page).
export function DeployForm({ name, current, code, onDeployed, onCancel }) {
  const { canWrite } = useSession();
  const call = useProjectApi();
  const whole = !!current;
  const [f, setF] = useState(() => (whole ? fieldsOf(name, current, code) : BLANK));
  const set = (k) => (v) => setF((old) => ({ ...old, [k]: v }));
  const [check, checked] = useAction(() => call("POST", `${FN}/check`, { body: { code: f.code } }));
  const [deploy, state] = useAction(() => call("PUT", fnPath(f.name.trim() || "-"), { body: bodyOf(f, whole) }));
  const submit = async () => {
    const out = await deploy();
    if (out) onDeployed(out);
  };
  const err = state.error;
  const c = checked.done;
  const checkText = c && (c.ok ? "ok" : `${c.line !== null && c.line !== undefined ? `line ${c.line}, column ${c.column}: ` : ""}${c.message}`);
  const label = whole ? `Deploy a new version of ${name}` : "Deploy a function";
  const empty = whole ? "" : " Empty: the default (or the current version's).";
  return html`<${Card} title=${whole ? "Deploy a new version" : "Deploy a function"} id="fn-deploy" wide>
    <p class="muted">${whole
      ? html`The new version starts from the current one: what you change or remove here changes in it. Secrets are kept
        (set or remove them with <code>edgeplane function deploy --secret</code> or the API).`
      : html`A new version rolls out to one edge node first (canary), then to the rest; deploying an existing
        name makes its next version. Secrets are set with <code>edgeplane function deploy --secret</code> or the API.`}</p>
    <${WriteForm} label=${label} onSubmit=${submit}>
      ${!whole && html`<div class="form-row">
        <${Input} label="Name" name="fn-name" value=${f.name} onValue=${set("name")} autocomplete="off"
          error=${errorAt(err, "name")} hint="Lower-case letters, digits and -." />
      </div>`}
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
          error=${errorAt(err, "limits.timeout_ms")} hint=${`The invocation's wall-clock limit.${empty}`} />
        <${Input} label="Memory (MiB)" name="fn-memory" type="number" min="8" value=${f.memory} onValue=${set("memory")}
          error=${errorAt(err, "limits.memory_mb")} hint=${`The isolate's heap limit.${empty}`} />
      </div>
      <div class="form-row">
        <${Input} label="Check path" name="fn-check-path" value=${f.checkPath} onValue=${set("checkPath")} autocomplete="off"
          error=${errorAt(err, "check_path")} placeholder="/api/health"
          hint="The canary node requests it once the version is loaded; 400 or above fails the version. Empty: none." />
        <${Input} label="Message" name="fn-message" value=${f.message} onValue=${set("message")} autocomplete="off"
          error=${errorAt(err, "message")} hint="What this version changes (optional)." />
      </div>
      <${ErrorBox} error=${unshown(err, FIELDS)} />
      <div class="actions">
        <button type="submit" class="btn primary" disabled=${!canWrite || state.busy}>Deploy</button>
        ${onCancel && html`<${Button} onClick=${onCancel}>Cancel<//>`}
      </div>
    <//>
  <//>`;
}
