// What the CDN page's parts share: API paths, field errors of list fields, small parsers.
import { ApiError, api, useSession } from "../ui.js";

export const CDN = "infrastructure/cdn";
export const rulePath = (id) => `${CDN}/rules/${encodeURIComponent(id)}`;

// The API's reason for `field` or one of its items (`cache_key.headers.1` for
// `cache_key.headers`), or null.
export function errorAt(error, field) {
  if (!(error instanceof ApiError)) return null;
  const hit = error.errors.find((e) => e.field === field || e.field.startsWith(field + "."));
  return hit ? (hit.field === field ? hit.reason : `${hit.field.slice(field.length + 1)}: ${hit.reason}`) : null;
}

// The error for a form's general error box: null when every reason it gives has a field of the
// form to show it (`shown`: the fields, matched as errorAt matches them).
export function unshown(error, shown) {
  if (!error) return null;
  if (!(error instanceof ApiError) || !error.errors.length) return error;
  const rest = error.errors.filter((e) => !shown.some((f) => e.field === f || e.field.startsWith(f + ".")));
  if (!rest.length) return null;
  return new Error(rest.map((e) => `${e.field}: ${e.reason}`).join("; "));
}

// "a, b c" -> ["a", "b", "c"]
export const words = (text) => String(text || "").split(/[\s,]+/).filter(Boolean);

// A number field's text as the API should see it: a number when it is one, else the text (so
// that the API names what is wrong), undefined when empty (the API's default).
export function numberOrText(text) {
  const t = String(text ?? "").trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

// api() in the page's project (useApi adds it by itself; calls made by hand must say it).
export function useProjectApi() {
  const { project } = useSession();
  return (method, path, opts = {}) => api(method, path, { ...opts, project });
}
