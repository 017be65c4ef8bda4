// The dashboard's shell: sign-in, the navigation, the project selector and the hash router.
import { render } from "../vendor/preact.js";
import { html, useState, useEffect, SessionContext, roleIn, PROJECTS_CHANGED, Input, Button, ErrorBox, api, Select } from "./ui.js";
import { setSession, setProject as setApiProject } from "./api.js";
import { ROUTES } from "./routes.js";

const PROJECT_KEY = "edgeplane.project";

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { key: parts[0] || "", rest: parts.slice(1), query: new URLSearchParams(qs || "") };
}

function SignIn({ onSignedIn, ended }) {
  const [mode, setMode] = useState("token");
  const [token, setToken] = useState("");
  const [login, setLogin] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => { document.title = "Sign in · Edgeplane"; }, []);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = mode === "token" ? { token: token.trim() } : { login: login.trim(), password };
      onSignedIn(await api("POST", "session", { body }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin" id="main">
    <form class="signin-card" onSubmit=${submit} aria-labelledby="signin-title">
      <h1 id="signin-title"><img src="/ui/favicon.svg" alt="" width="28" height="28" /> Edgeplane</h1>
      ${ended && html`<p class="notice info" role="status">Your session has ended; sign in again.</p>`}
      <div class="tabs" role="group" aria-label="Sign in with">
        <button type="button" class=${mode === "token" ? "tab active" : "tab"} aria-pressed=${mode === "token"} onClick=${() => setMode("token")}>API token</button>
        <button type="button" class=${mode === "login" ? "tab active" : "tab"} aria-pressed=${mode === "login"} onClick=${() => setMode("login")}>Login</button>
      </div>
      ${mode === "token"
        ? html`<${Input} label="API token" name="token" type="password" autocomplete="off" value=${token} onValue=${setToken}
            hint="edgeplane up prints the admin token; edgeplane token create makes others." error=${error && error.on("token")} />`
        : html`<${Input} label="Login name" name="login" autocomplete="username" value=${login} onValue=${setLogin} error=${error && error.on("login")} />
            <${Input} label="Password" name="password" type="password" autocomplete="current-password" value=${password} onValue=${setPassword} error=${error && error.on("password")} />`}
      <${ErrorBox} error=${error} />
      <button type="submit" class="btn primary" disabled=${busy}>Sign in</button>
    </form>
  </main>`;
}

function Nav({ current }) {
  return html`<nav class="nav" aria-label="Sections">
    <a class="brand" href="#/"><img src="/ui/favicon.svg" alt="" width="22" height="22" /> Edgeplane</a>
    <ul>
      ${ROUTES.map(
        (r) => html`<li><a href=${`#/${r.key}`} aria-current=${r.key === current ? "page" : undefined}>${r.title}</a></li>`,
      )}
    </ul>
  </nav>`;
}

const loaded = {};
function RoutePage({ route, rest, query }) {
  const [mod, setMod] = useState(loaded[route.module] || null);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (loaded[route.module]) { setMod(loaded[route.module]); return; }
    setMod(null);
    import(`./pages/${route.module}.js`).then(
      (m) => { loaded[route.module] = m; setMod(m); },
      (e) => setError(e),
    );
  }, [route.module]);
  if (error) return html`<${ErrorBox} error=${error} title="This page failed to load" />`;
  if (!mod) return html`<p class="muted" role="status">Loading…</p>`;
  const Page = mod.default;
  return html`<${Page} path=${rest} query=${query} />`;
}

function Shell({ session, onSignOut }) {
  const [where, setWhere] = useState(parseHash());
  const [projects, setProjects] = useState(null);
  // The project remembered, if the session may see it; else one it has a role in (a page
  // shown in a project the session cannot see would fetch only refusals).
  const [project, setProjectState] = useState(() => {
    const stored = localStorage.getItem(PROJECT_KEY) || "default";
    const mine = Object.keys(session.roles || {});
    return session.platform_admin || mine.includes(stored) || !mine.length ? stored : mine[0];
  });
  setApiProject(project);
  useEffect(() => {
    const on = () => setWhere(parseHash());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  useEffect(() => {
    // Pages load once the project is known to be one this session may see.
    const load = () => api("GET", "projects", { project: false }).then((list) => {
      if (list.length && !list.some((p) => p.id === project)) setProject(list[0].id);
      setProjects(list);
    }, () => setProjects((known) => known || []));
    load();
    addEventListener(PROJECTS_CHANGED, load);
    return () => removeEventListener(PROJECTS_CHANGED, load);
  }, []);
  const setProject = (p) => { localStorage.setItem(PROJECT_KEY, p); setApiProject(p); setProjectState(p); };
  const role = roleIn(session, project);
  const ctx = { session, project, setProject, role, canWrite: role === "admin" || role === "editor" };
  const route = ROUTES.find((r) => r.key === where.key);
  const signOut = async () => {
    try { await api("DELETE", "session"); } catch (_) { /* ended already */ }
    onSignOut();
  };
  return html`<${SessionContext.Provider} value=${ctx}>
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>Skip to content</a>
    <div class="layout">
      <${Nav} current=${where.key} />
      <div class="body">
        <header class="topbar">
          <div class="project-select">
            <${Select} label="Project" name="project" inline value=${project} onValue=${setProject}
              options=${(projects && projects.length ? projects : [{ id: project }]).map((p) => [p.id, p.name || p.id])} />
          </div>
          <span class="who" aria-label="Signed in as">${session.login || session.actor}
            <span class=${`badge ${role === "viewer" ? "warn" : "good"}`}>${role || "no role"}</span></span>
          <button type="button" class="btn" onClick=${signOut}>Sign out</button>
        </header>
        <main id="main" tabindex="-1">
          ${projects === null
            ? html`<p class="muted" role="status">Loading…</p>`
            : route
            ? html`<${RoutePage} key=${route.key + project} route=${route} rest=${where.rest} query=${where.query} />`
            : html`<section class="page"><h1>Not found</h1><p>No page at ${location.hash}. <a href="#/">Overview</a></p></section>`}
        </main>
      </div>
    </div>
  <//>`;
}

function App() {
  const [session, setSessionState] = useState(undefined);
  const [ended, setEnded] = useState(false);
  const use = (s) => { setSession(s, () => { setEnded(true); use(null); }); setSessionState(s); };
  useEffect(() => {
    api("GET", "session").then(use, () => use(null));
  }, []);
  if (session === undefined) return html`<p class="loading" role="status">Loading Edgeplane…</p>`;
  if (!session) return html`<${SignIn} ended=${ended} onSignedIn=${(s) => { setEnded(false); use(s); }} />`;
  return html`<${Shell} session=${session} onSignOut=${() => use(null)} />`;
}

render(html`<${App} />`, document.getElementById("app"));
