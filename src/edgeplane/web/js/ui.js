// The dashboard's shared pieces: the html template tag, the session context, data loading with
// polling, form controls with their errors, tables, badges, charts and formatting. Pages import
// from here only (and from api.js).
import { h, createContext, Fragment } from "../vendor/preact.js";
import { useState, useEffect, useContext, useRef, useCallback, useMemo } from "../vendor/hooks.js";
import htm from "../vendor/htm.js";
import { api, ApiError } from "./api.js";

export const html = htm.bind(h);
export { h, Fragment, useState, useEffect, useContext, useRef, useCallback, useMemo, api, ApiError };

// Session -------------------------------------------------------------------------------------

export const SessionContext = createContext(null);

// {session, project, setProject, role, canWrite, navigate}
export function useSession() {
  return useContext(SessionContext);
}

export function roleIn(session, project) {
  if (!session) return null;
  if (session.roles[project]) return session.roles[project];
  return session.platform_admin ? "admin" : null;
}

// Dispatched on window when projects were created or deleted: the shell lists them again.
export const PROJECTS_CHANGED = "edgeplane:projects-changed";

export function navigate(to) {
  if (location.hash !== to) location.hash = to;
}

// Data ----------------------------------------------------------------------------------------

// Load `path` (relative to /api/v1/) in the current project; `every` ms re-polls (live views);
// `project: false` leaves the project out (global objects). Returns {data, error, loading,
// reload}. A null path loads nothing.
export function useApi(path, { query, every, project, deps = [] } = {}) {
  const ctx = useSession();
  const proj = project === false ? undefined : project || (ctx && ctx.project);
  const key = JSON.stringify([path, query, proj]);
  const [state, setState] = useState({ data: undefined, error: null, loading: !!path });
  const seq = useRef(0);
  const load = useCallback(async () => {
    if (!path) return;
    const mine = ++seq.current;
    try {
      const data = await api("GET", path, { query, project: proj });
      if (mine === seq.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === seq.current) setState((s) => ({ data: s.data, error, loading: false }));
    }
  }, [key]);
  useEffect(() => {
    setState((s) => ({ ...s, loading: !!path }));
    load();
    if (!every || !path) return undefined;
    const timer = setInterval(() => {
      if (!document.hidden) load();
    }, every);
    return () => clearInterval(timer);
  }, [key, every, ...deps]);
  return { ...state, reload: load };
}

// Run a write; returns [run, {busy, error, done}]. run(...) resolves to the result, or to
// undefined after an error (kept in `error` for the form to show).
export function useAction(fn) {
  const [state, setState] = useState({ busy: false, error: null, done: null });
  const run = async (...args) => {
    setState({ busy: true, error: null, done: null });
    try {
      // A 204 (null) or nothing returned is a success too: true.
      const result = await fn(...args);
      const done = result === undefined || result === null ? true : result;
      setState({ busy: false, error: null, done });
      return done;
    } catch (error) {
      setState({ busy: false, error, done: null });
      return undefined;
    }
  };
  const reset = () => setState({ busy: false, error: null, done: null });
  return [run, { ...state, reset }];
}

// A form's values, started from `stored` (what the server holds) and following it while the
// user has not edited them: a reload after a save, or a poll, never wipes what is being typed.
// Returns [values, set(patch)].
export function useStoredForm(stored) {
  const [values, setValues] = useState(stored);
  const base = useRef(stored);
  const seen = JSON.stringify(stored);
  useEffect(() => {
    const before = JSON.stringify(base.current);
    base.current = stored;
    setValues((now) => (JSON.stringify(now) === before ? stored : now));
  }, [seen]);
  const set = (patch) => setValues((now) => ({ ...now, ...patch }));
  return [values, set];
}

// The reason an ApiError gives for `field`, or null.
export function fieldError(error, field) {
  return error instanceof ApiError ? error.on(field) : null;
}

// Layout --------------------------------------------------------------------------------------

export function Page({ title, actions, children, subtitle }) {
  useEffect(() => {
    document.title = `${title} · Edgeplane`;
  }, [title]);
  return html`<section class="page" aria-labelledby="page-title">
    <header class="page-head">
      <div>
        <h1 id="page-title">${title}</h1>
        ${subtitle && html`<p class="muted">${subtitle}</p>`}
      </div>
      ${actions && html`<div class="actions">${actions}</div>`}
    </header>
    ${children}
  </section>`;
}

export function Card({ title, children, actions, id, wide }) {
  const hid = id ? `${id}-title` : undefined;
  return html`<section class=${"card" + (wide ? " wide" : "")} id=${id} aria-labelledby=${hid}>
    ${(title || actions) &&
    html`<header class="card-head">
      ${title && html`<h2 id=${hid}>${title}</h2>`}
      ${actions && html`<div class="actions">${actions}</div>`}
    </header>`}
    ${children}
  </section>`;
}

export function Grid({ children }) {
  return html`<div class="grid">${children}</div>`;
}

// Errors and notices --------------------------------------------------------------------------

export function ErrorBox({ error, title }) {
  if (!error) return null;
  const text = error instanceof ApiError ? error.message : String(error.message || error);
  return html`<div class="error-box" role="alert">
    ${title && html`<strong>${title}: </strong>`}${text}
  </div>`;
}

export function Notice({ children, kind = "info" }) {
  return html`<div class=${`notice ${kind}`} role="status">${children}</div>`;
}

export function Loading({ what }) {
  return html`<p class="muted" role="status">Loading${what ? ` ${what}` : ""}…</p>`;
}

// Form controls: each has a visible label, and the API's reason for its field below it. -----

let nextId = 0;
function useId(prefix) {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}-${++nextId}`;
  return ref.current;
}

function FieldShell({ id, label, error, hint, children, inline }) {
  return html`<div class=${"field" + (error ? " invalid" : "") + (inline ? " inline" : "")}>
    <label for=${id}>${label}</label>
    ${children}
    ${hint && !error && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
    ${error && html`<p class="field-error" id=${`${id}-error`} role="alert">${error}</p>`}
  </div>`;
}

function described(id, error, hint) {
  if (error) return `${id}-error`;
  return hint ? `${id}-hint` : undefined;
}

// <Input label="Name" value=${v} onValue=${setV} error=${fieldError(err, "name")} />
export function Input({ label, value, onValue, error, hint, type = "text", name, inline, ...rest }) {
  const id = useId(name || "input");
  return html`<${FieldShell} id=${id} label=${label} error=${error} hint=${hint} inline=${inline}>
    <input
      id=${id}
      name=${name}
      type=${type}
      value=${value ?? ""}
      aria-invalid=${error ? "true" : undefined}
      aria-describedby=${described(id, error, hint)}
      onInput=${(e) => onValue && onValue(type === "number" ? e.currentTarget.value : e.currentTarget.value)}
      ...${rest}
    />
  <//>`;
}

export function Textarea({ label, value, onValue, error, hint, name, rows = 6, ...rest }) {
  const id = useId(name || "text");
  return html`<${FieldShell} id=${id} label=${label} error=${error} hint=${hint}>
    <textarea
      id=${id}
      name=${name}
      rows=${rows}
      aria-invalid=${error ? "true" : undefined}
      aria-describedby=${described(id, error, hint)}
      onInput=${(e) => onValue && onValue(e.currentTarget.value)}
      ...${rest}
    >${value ?? ""}</textarea>
  <//>`;
}

// options: [[value, label], ...] or [value, ...]
export function Select({ label, value, onValue, options, error, hint, name, inline, ...rest }) {
  const id = useId(name || "select");
  return html`<${FieldShell} id=${id} label=${label} error=${error} hint=${hint} inline=${inline}>
    <select
      id=${id}
      name=${name}
      aria-invalid=${error ? "true" : undefined}
      aria-describedby=${described(id, error, hint)}
      onChange=${(e) => onValue && onValue(e.currentTarget.value)}
      ...${rest}
    >
      ${options.map((o) => {
        const [v, l] = Array.isArray(o) ? o : [o, o];
        return html`<option value=${v} selected=${String(v) === String(value)}>${l}</option>`;
      })}
    </select>
  <//>`;
}

export function Checkbox({ label, checked, onValue, name, error, hint, ...rest }) {
  const id = useId(name || "check");
  return html`<div class=${"field check" + (error ? " invalid" : "")}>
    <input
      id=${id}
      name=${name}
      type="checkbox"
      checked=${!!checked}
      aria-invalid=${error ? "true" : undefined}
      aria-describedby=${described(id, error, hint)}
      onChange=${(e) => onValue && onValue(e.currentTarget.checked)}
      ...${rest}
    />
    <label for=${id}>${label}</label>
    ${hint && !error && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
    ${error && html`<p class="field-error" id=${`${id}-error`} role="alert">${error}</p>`}
  </div>`;
}

// A button; `write` ones are disabled for a viewer (the API refuses their requests anyway).
export function Button({ children, onClick, kind = "", write = false, disabled, type = "button", busy, ...rest }) {
  const ctx = useSession();
  const readOnly = write && ctx && !ctx.canWrite;
  return html`<button
    type=${type}
    class=${`btn ${kind}`}
    onClick=${onClick}
    disabled=${disabled || readOnly || busy}
    title=${readOnly ? "Your role in this project is viewer: read only" : rest.title}
    aria-busy=${busy ? "true" : undefined}
    data-write=${write ? "" : undefined}
    ...${rest}
  >${children}</button>`;
}

// A form whose controls are all disabled for a viewer.
export function WriteForm({ children, onSubmit, label, class: cls }) {
  const ctx = useSession();
  return html`<form
    class=${cls || "form"}
    aria-label=${label}
    onSubmit=${(e) => {
      e.preventDefault();
      onSubmit && onSubmit(e);
    }}
  >
    <fieldset disabled=${ctx && !ctx.canWrite}>${children}</fieldset>
  </form>`;
}

export function CopyButton({ text, label = "Copy" }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return html`<button type="button" class="btn small" onClick=${copy} aria-label=${`${label}: ${text.slice(0, 40)}`}>
    ${copied ? "Copied" : label}
  </button>`;
}

export function Tabs({ tabs, current, onSelect, label }) {
  return html`<div class="tabs" role="tablist" aria-label=${label}>
    ${tabs.map(
      ([key, title]) => html`<button
        type="button"
        role="tab"
        id=${`tab-${key}`}
        aria-selected=${key === current ? "true" : "false"}
        class=${key === current ? "tab active" : "tab"}
        onClick=${() => onSelect(key)}
      >${title}</button>`,
    )}
  </div>`;
}

// Tables --------------------------------------------------------------------------------------

// columns: [{key, label, render?(row), class?}]
export function Table({ columns, rows, empty = "Nothing yet.", caption, rowKey, rowClass }) {
  return html`<div class="table-wrap"><table>
    ${caption && html`<caption>${caption}</caption>`}
    <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.class}>${c.label}</th>`)}</tr></thead>
    <tbody>
      ${rows && rows.length
        ? rows.map(
            (r, i) => html`<tr key=${rowKey ? rowKey(r) : i} class=${rowClass ? rowClass(r) : undefined}>
              ${columns.map((c) => html`<td class=${c.class}>${c.render ? c.render(r, i) : fmtCell(r[c.key])}</td>`)}
            </tr>`,
          )
        : html`<tr><td colspan=${columns.length} class="muted">${rows ? empty : "Loading…"}</td></tr>`}
    </tbody>
  </table></div>`;
}

function fmtCell(v) {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) return v.join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// Badges: a state word coloured by what it means.
const GOOD = new Set(["ok", "up", "healthy", "verified", "active", "issued", "valid", "applied", "live", "serving", "enabled", "succeeded", "done", "completed", "resolved", "on"]);
const BAD = new Set(["down", "unhealthy", "failed", "error", "expired", "revoked", "firing", "dead", "invalid", "critical", "unverified", "offline", "stale"]);
export function stateKind(state) {
  const s = String(state ?? "").toLowerCase();
  if (GOOD.has(s)) return "good";
  if (BAD.has(s)) return "bad";
  return "warn";
}
export function Badge({ state, children }) {
  return html`<span class=${`badge ${stateKind(state)}`}>${children ?? state ?? "unknown"}</span>`;
}

// Charts --------------------------------------------------------------------------------------

const PALETTE = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
export const colour = (i) => PALETTE[i % PALETTE.length];

// series: [{name, points: [[time (ms or ISO), value], ...]}]. An SVG line chart with axes,
// a legend and a text summary for screen readers.
export function LineChart({ series, label, unit = "", height = 180, format }) {
  const fmt = format || ((v) => fmtNum(v) + (unit ? ` ${unit}` : ""));
  const W = 640, H = height, L = 56, R = 12, T = 10, B = 24;
  const all = (series || []).flatMap((s) => s.points.map(([t, v]) => [toMs(t), Number(v)]));
  if (!all.length) return html`<figure class="chart" aria-label=${label}><p class="muted">No data yet.</p></figure>`;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) { x0 -= 60000; x1 += 60000; }
  const y1 = Math.max(...ys, 0) * 1.1 || 1;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - y / y1) * (H - T - B);
  const ticks = [0, y1 / 2, y1];
  return html`<figure class="chart">
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${`${label}: ${series.map((s) => `${s.name} latest ${fmt(s.points.length ? s.points[s.points.length - 1][1] : 0)}`).join("; ")}`}>
      ${ticks.map((t) => html`<g><line x1=${L} x2=${W - R} y1=${sy(t)} y2=${sy(t)} class="grid-line" /><text x=${L - 6} y=${sy(t) + 4} text-anchor="end" class="axis">${fmtNum(t)}</text></g>`)}
      <text x=${L} y=${H - 6} class="axis">${fmtTime(x0)}</text>
      <text x=${W - R} y=${H - 6} text-anchor="end" class="axis">${fmtTime(x1)}</text>
      ${series.map((s, i) => {
        if (s.points.length === 1) {  // one sample: a dot, a line needs two
          const [t, v] = s.points[0];
          return html`<circle cx=${sx(toMs(t))} cy=${sy(Number(v))} r="3.5" fill=${colour(i)} />`;
        }
        const pts = s.points.map(([t, v]) => `${sx(toMs(t)).toFixed(1)},${sy(Number(v)).toFixed(1)}`).join(" ");
        return html`<polyline points=${pts} fill="none" stroke=${colour(i)} stroke-width="2" />`;
      })}
    </svg>
    <figcaption class="legend">
      ${label && html`<span class="legend-title">${label}</span>`}
      ${series.map((s, i) => html`<span class="legend-item"><span class="swatch" style=${{ background: colour(i) }}></span>${s.name}</span>`)}
    </figcaption>
  </figure>`;
}

// A horizontal bar per item: [{name, value}]
export function BarList({ items, label, format = fmtNum }) {
  const max = Math.max(1, ...items.map((i) => Number(i.value) || 0));
  return html`<ul class="bars" aria-label=${label}>
    ${items.map(
      (i, n) => html`<li>
        <span class="bar-name">${i.name}</span>
        <span class="bar-track"><span class="bar" style=${{ width: `${(100 * (Number(i.value) || 0)) / max}%`, background: colour(n) }}></span></span>
        <span class="bar-value">${format(i.value)}</span>
      </li>`,
    )}
  </ul>`;
}

export function Stat({ label, value, kind }) {
  return html`<div class=${`stat ${kind || ""}`}><span class="stat-value">${value}</span><span class="stat-label">${label}</span></div>`;
}

// Formatting ----------------------------------------------------------------------------------

export function toMs(t) {
  return typeof t === "number" ? (t < 1e12 ? t * 1000 : t) : Date.parse(t);
}
export function fmtNum(v, digits = 2) {
  const n = Number(v);
  if (!isFinite(n)) return "—";
  if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (Number.isInteger(n)) return String(n);
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(digits);
}
export function fmtBytes(v) {
  let n = Number(v) || 0;
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
export function fmtPct(v, digits = 1) {
  return v === null || v === undefined ? "—" : `${(Number(v) * (Math.abs(v) <= 1 ? 100 : 1)).toFixed(digits)} %`;
}
export function fmtMoney(v, currency = "USD") {
  if (v === null || v === undefined) return "—";
  return new Intl.NumberFormat("en-US", { style: "currency", currency }).format(Number(v));
}
export function fmtMs(v) {
  if (v === null || v === undefined) return "—";
  const n = Number(v);
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(n < 10 ? 1 : 0)} ms`;
}
export function fmtTime(t) {
  if (!t) return "—";
  const d = new Date(toMs(t));
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}
export function fmtAgo(t) {
  if (!t) return "never";
  const s = Math.round((Date.now() - toMs(t)) / 1000);
  if (s < 0) return `in ${fmtDuration(-s)}`;
  return `${fmtDuration(s)} ago`;
}
export function fmtDuration(s) {
  s = Math.round(Number(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}
