// The API client of the dashboard: JSON over fetch with the session cookie, the session's CSRF
// token on every write, the project as ?project=, and API problems as ApiError (status, detail,
// and the field errors that forms show beside their fields).

export class ApiError extends Error {
  constructor(status, doc) {
    super(doc.detail || doc.title || `HTTP ${status}`);
    this.status = status;
    this.doc = doc;
    this.field = doc.field || null;
    // [{field, reason}]: invalid-input lists them; other problems may name one field.
    this.errors = doc.errors || (doc.field ? [{ field: doc.field, reason: doc.detail }] : []);
  }
  // The reason given for `field` (exact, or a sub-field of it: "records.0.type" for "type").
  on(field) {
    const hit = this.errors.find((e) => e.field === field || e.field.endsWith("." + field));
    return hit ? hit.reason : null;
  }
}

let csrf = null;
let onSignedOut = () => {};
let currentProject = null;

// The project every request is made in unless it names one (`project`), or none (`project:
// false`, for global objects): the shell sets it from its project selector.
export function setProject(project) {
  currentProject = project;
}

export function setSession(session, signedOut) {
  csrf = session ? session.csrf_token : null;
  if (signedOut) onSignedOut = signedOut;
}

function url(path, query) {
  const full = path.startsWith("/") ? path : `/api/v1/${path}`;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => params.append(k, x));
    else params.append(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${full}${full.includes("?") ? "&" : "?"}${qs}` : full;
}

// api("GET", "domains", {query: {project}}) -> parsed JSON (null for 204).
export async function api(method, path, { body, query, project, raw } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined && !(body instanceof FormData)) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const q = { ...(query || {}) };
  const chosen = project === false ? null : project || currentProject;
  if (chosen && q.project === undefined) q.project = chosen;
  const res = await fetch(url(path, q), {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const err = new ApiError(res.status, typeof data === "object" ? data : { detail: String(data) });
    if (res.status === 401 && !path.endsWith("session")) onSignedOut(err);
    throw err;
  }
  return raw ? { data, headers: res.headers } : data;
}

export const get = (path, opts) => api("GET", path, opts);
export const post = (path, body, opts) => api("POST", path, { ...opts, body });
export const put = (path, body, opts) => api("PUT", path, { ...opts, body });
export const patch = (path, body, opts) => api("PATCH", path, { ...opts, body });
export const del = (path, opts) => api("DELETE", path, opts);
