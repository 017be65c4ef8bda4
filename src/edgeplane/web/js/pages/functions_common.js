// What the Functions pages share: API paths, a version's status as a badge, routes in the
// CLI's words (HOST/PATH[@METHODS]) both ways, and KEY=VALUE lines.
import { html, Badge } from "../ui.js";

export { errorAt, unshown, numberOrText, useProjectApi } from "./scaling_common.js";

export const FN = "infrastructure/functions";
export const fnPath = (name) => `${FN}/${encodeURIComponent(name)}`;
export const fnHref = (name) => `#/functions/${encodeURIComponent(name)}`;
export const MOVING = new Set(["canary", "rolling"]);

// active: good; canary, rolling, superseded, cancelled: warn; failed: bad.
export function VersionStatus({ status }) {
  return html`<${Badge} state=${status}>${status}<//>`;
}

// {pattern, methods} -> "shop.example.com/api/*@GET,POST"
export const routeText = (r) => r.pattern + (r.methods && r.methods.length ? `@${r.methods.join(",")}` : "");

const METHODS = /^[A-Za-z]+(,[A-Za-z]+)*$/;
// One route per line, as the CLI's --route takes them; empty lines skipped.
export function parseRoutes(text) {
  return String(text || "").split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const at = line.lastIndexOf("@");
    const tail = at >= 0 ? line.slice(at + 1) : "";
    if (at >= 0 && METHODS.test(tail)) return { pattern: line.slice(0, at), methods: tail.toUpperCase().split(",") };
    return { pattern: line };
  });
}

// KEY=VALUE per line (the value may hold "="); a line without "=" is a name with an empty value.
export function parseVars(text) {
  const out = {};
  for (const raw of String(text || "").split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf("=");
    if (eq < 0) out[line] = "";
    else out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return out;
}

export function RouteList({ routes }) {
  if (!routes || !routes.length) return html`<span class="muted">—</span>`;
  return html`<ul class="sc-list">${routes.map((r) => html`<li><code>${routeText(r)}</code></li>`)}</ul>`;
}
