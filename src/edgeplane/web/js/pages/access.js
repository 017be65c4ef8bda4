// Access: who is signed in, API tokens (created with a role per project; the secret shown once),
// the dashboard's logins (a name, a password and roles) and projects.
import {
  html, useState, Page, Card, Grid, useApi, useAction, api, Table, ErrorBox, Button, WriteForm, Input, Select,
  Badge, Notice, CopyButton, useSession, fieldError, fmtAgo, fmtTime, PROJECTS_CHANGED,
} from "../ui.js";

const ROLES = ["viewer", "editor", "admin"];
const roleList = (roles) => {
  const entries = Object.entries(roles || {});
  return entries.length ? entries.map(([p, r]) => html`<span class="ops-role"><code>${p}</code> <${Badge} state=${r === "viewer" ? "warn" : "ok"}>${r}<//></span> `) : html`<span class="muted">none</span>`;
};

function Identity() {
  const { session, project, role } = useSession();
  return html`<${Card} title="You" id="access-you">
    <dl class="ops-facts">
      <dt>Signed in as</dt><dd>${session.login ? html`login <strong>${session.login}</strong>` : session.actor}</dd>
      <dt>Token</dt><dd><code>${session.token_id}</code></dd>
      <dt>Role in ${project}</dt><dd><${Badge} state=${role === "viewer" ? "warn" : "ok"}>${role || "none"}<//></dd>
      <dt>Roles</dt><dd>${roleList(session.roles)}</dd>
      <dt>Platform admin</dt><dd>${session.platform_admin ? "yes" : "no"}</dd>
      <dt>Session ends</dt><dd>${fmtTime(session.expires_at)}</dd>
    </dl>
  <//>`;
}

// Roles per project: one row each, a project and a role.
function RolesEditor({ value, onValue, projects, error, idPrefix }) {
  const options = (projects || []).map((p) => [p.id, p.name ? `${p.name} (${p.id})` : p.id]);
  const set = (i, k, v) => onValue(value.map((r, n) => (n === i ? { ...r, [k]: v } : r)));
  // A group, not a fieldset: the write form's own fieldset is the one a viewer finds disabled.
  return html`<div class="ops-roles" role="group" aria-labelledby=${`${idPrefix}-roles-title`}>
    <p class="ops-roles-title" id=${`${idPrefix}-roles-title`}>Roles</p>
    ${value.map((r, i) => html`<div class="form-row" key=${i}>
      <${Select} label=${`Project ${i + 1}`} name=${`${idPrefix}-project-${i}`} value=${r.project} onValue=${(v) => set(i, "project", v)}
        options=${options.length ? options : [[r.project, r.project]]} />
      <${Select} label=${`Role in project ${i + 1}`} name=${`${idPrefix}-role-${i}`} value=${r.role} onValue=${(v) => set(i, "role", v)} options=${ROLES}
        error=${fieldError(error, `roles.${r.project}`)} />
      ${value.length > 1 && html`<${Button} kind="small" onClick=${() => onValue(value.filter((_, n) => n !== i))} aria-label=${`Remove the role in project ${i + 1}`}>Remove<//>`}
    </div>`)}
    <${Button} kind="small" onClick=${() => onValue([...value, { project: (projects && projects[0] && projects[0].id) || "default", role: "viewer" }])}>Add a project<//>
    ${fieldError(error, "roles") && html`<p class="field-error" role="alert">${fieldError(error, "roles")}</p>`}
  </div>`;
}

const toRoles = (rows) => Object.fromEntries(rows.map((r) => [r.project, r.role]));

function Tokens({ projects }) {
  const { project } = useSession();
  const tokens = useApi("tokens", { project: false });
  const [name, setName] = useState("");
  const [roles, setRoles] = useState([{ project, role: "viewer" }]);
  const [issued, setIssued] = useState(null);
  const [create, cState] = useAction(() => api("POST", "tokens", { body: { name, roles: toRoles(roles) } }));
  const [revoke, rState] = useAction((id) => api("DELETE", `tokens/${encodeURIComponent(id)}`));
  const submit = async () => {
    const t = await create();
    if (t) { setIssued(t); setName(""); tokens.reload(); }
  };
  return html`<${Card} title="API tokens" id="access-tokens" wide>
    <${ErrorBox} error=${tokens.error} />
    ${issued && html`<div class="notice good secret" role="status">
      <p><strong>Token ${issued.name} created.</strong> Copy its secret now: it is shown only this once.</p>
      <p><code class="ops-secret-value" data-testid="token-secret">${issued.token}</code> <${CopyButton} text=${issued.token} label="Copy the token" /></p>
      <${Button} kind="small" onClick=${() => setIssued(null)}>Done<//>
    </div>`}
    <${WriteForm} label="New API token" onSubmit=${submit}>
      <h3>New API token</h3>
      <${Input} label="Token name" name="token-name" value=${name} onValue=${setName} error=${fieldError(cState.error, "name")} />
      <${RolesEditor} value=${roles} onValue=${setRoles} projects=${projects} error=${cState.error} idPrefix="token" />
      ${cState.error && !fieldError(cState.error, "name") && html`<${ErrorBox} error=${cState.error} />`}
      <${Button} type="submit" kind="primary" write busy=${cState.busy}>Create token<//>
    <//>
    <${ErrorBox} error=${rState.error} title="Not revoked" />
    <${Table}
      caption="Tokens"
      rows=${tokens.data}
      rowKey=${(t) => t.id}
      columns=${[
        { key: "name", label: "Name" },
        { key: "id", label: "ID", render: (t) => html`<code>${t.id}</code>` },
        { key: "prefix", label: "Starts with", render: (t) => html`<code>${t.prefix}…</code>` },
        { key: "scope", label: "Scope" },
        { key: "roles", label: "Roles", render: (t) => roleList(t.roles) },
        { key: "created", label: "Created", render: (t) => `${fmtAgo(t.created_at)} by ${t.created_by}` },
        { key: "last_used_at", label: "Last used", render: (t) => fmtAgo(t.last_used_at) },
        { key: "state", label: "State", render: (t) => (t.revoked_at ? html`<${Badge} state="revoked">revoked ${fmtAgo(t.revoked_at)}<//>` : html`<${Badge} state="active" />`) },
        { key: "_revoke", label: "Actions", render: (t) => (t.revoked_at ? "" : html`<${Button} kind="small danger" write aria-label=${`Revoke token ${t.name} (${t.id})`}
            onClick=${async () => { if (await revoke(t.id)) tokens.reload(); }}>Revoke<//>`) },
      ]}
    />
  <//>`;
}

function Logins({ projects }) {
  const { project } = useSession();
  const logins = useApi("logins", { project: false });
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [roles, setRoles] = useState([{ project, role: "viewer" }]);
  const [created, setCreated] = useState(null);
  const [create, cState] = useAction(() => api("POST", "logins", { body: { name, password, roles: toRoles(roles) } }));
  const [remove, dState] = useAction(async (n) => { await api("DELETE", `logins/${encodeURIComponent(n)}`); return true; });
  const submit = async () => {
    const l = await create();
    if (l) { setCreated(l.name); setName(""); setPassword(""); logins.reload(); }
  };
  const named = cState.error && (fieldError(cState.error, "name") || fieldError(cState.error, "password"));
  return html`<${Card} title="Dashboard logins" id="access-logins" wide>
    <${ErrorBox} error=${logins.error} />
    ${created && html`<${Notice} kind="good">Login ${created} created: it signs in on the dashboard's Login tab.<//>`}
    <${WriteForm} label="New login" onSubmit=${submit}>
      <h3>New login</h3>
      <div class="form-row">
        <${Input} label="Login name" name="login-name" autocomplete="off" value=${name} onValue=${setName} error=${fieldError(cState.error, "name")} />
        <${Input} label="Password" name="login-password" type="password" autocomplete="new-password" value=${password} onValue=${setPassword}
          error=${fieldError(cState.error, "password")} hint="10 characters at least" />
      </div>
      <${RolesEditor} value=${roles} onValue=${setRoles} projects=${projects} error=${cState.error} idPrefix="login" />
      ${cState.error && !named && html`<${ErrorBox} error=${cState.error} />`}
      <${Button} type="submit" kind="primary" write busy=${cState.busy}>Create login<//>
    <//>
    <${ErrorBox} error=${dState.error} title="Not deleted" />
    <${Table}
      caption="Logins"
      empty="No login yet: people sign in with API tokens."
      rows=${logins.data}
      rowKey=${(l) => l.name}
      columns=${[
        { key: "name", label: "Name" },
        { key: "roles", label: "Roles", render: (l) => roleList(l.roles) },
        { key: "token_id", label: "Token", render: (l) => html`<code>${l.token_id}</code>` },
        { key: "created", label: "Created", render: (l) => `${fmtAgo(l.created_at)} by ${l.created_by}` },
        { key: "_delete", label: "Actions", render: (l) => html`<${Button} kind="small danger" write aria-label=${`Delete login ${l.name}`}
            onClick=${async () => { if (await remove(l.name)) logins.reload(); }}>Delete<//>` },
      ]}
    />
  <//>`;
}

function Projects({ projects }) {
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [create, state] = useAction(() => api("POST", "projects", { body: { id, name: name || undefined } }));
  const submit = async () => {
    if (await create()) {
      setId("");
      setName("");
      projects.reload();
      dispatchEvent(new Event(PROJECTS_CHANGED));  // the shell's project selector lists it
    }
  };
  const named = state.error && (fieldError(state.error, "id") || fieldError(state.error, "name"));
  return html`<${Card} title="Projects" id="access-projects">
    <${ErrorBox} error=${projects.error} />
    <${Table}
      caption="Projects"
      rows=${projects.data}
      rowKey=${(p) => p.id}
      columns=${[
        { key: "id", label: "ID", render: (p) => html`<code>${p.id}</code>` },
        { key: "name", label: "Name" },
        { key: "environments", label: "Environments" },
        { key: "created_at", label: "Created", render: (p) => fmtAgo(p.created_at) },
      ]}
    />
    <${WriteForm} label="New project" onSubmit=${submit}>
      <h3>New project</h3>
      <div class="form-row">
        <${Input} label="Project ID" name="project-id" value=${id} onValue=${setId} error=${fieldError(state.error, "id")} />
        <${Input} label="Project name" name="project-name" value=${name} onValue=${setName} error=${fieldError(state.error, "name")} hint="optional" />
      </div>
      ${state.error && !named && html`<${ErrorBox} error=${state.error} />`}
      ${state.done && html`<${Notice} kind="good">Project ${state.done.id} created: choose it in the project selector at the top.<//>`}
      <${Button} type="submit" kind="primary" write busy=${state.busy}>Create project<//>
    <//>
  <//>`;
}

export default function Access() {
  const projects = useApi("projects", { project: false });
  return html`<${Page} title="Access" subtitle="Who may do what: API tokens, dashboard logins and projects">
    <${Grid}>
      <${Identity} />
      <${Projects} projects=${projects} />
    <//>
    <${Tokens} projects=${projects.data} />
    <${Logins} projects=${projects.data} />
  <//>`;
}
