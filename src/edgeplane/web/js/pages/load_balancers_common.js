// What the load balancer pages share: API paths, the algorithms, and a summary of health.
import { html, Badge } from "../ui.js";

export const LB = "infrastructure/loadbalancer";
export const lbPath = (id) => `${LB}/${encodeURIComponent(id)}`;
// A backend is named by its key in paths; URLs as keys are URL-encoded.
export const backendPath = (id, key) => `${lbPath(id)}/backends/${encodeURIComponent(key)}`;
// A backend's key: its address, with its port when given apart (a server id and a port); the
// name the edge gives it in health reports and the backend_requests series.
export const backendKey = (b) => (b.port === null || b.port === undefined ? b.address : `${b.address}:${b.port}`);

export const ALGORITHMS = [
  ["round_robin", "Round robin"],
  ["least_conn", "Least connections"],
  ["ip_hash", "IP hash (sticky by client address)"],
  ["weighted", "Weighted"],
  ["dynamic", "Dynamic (least connections weighted by measured latency)"],
];
export const algorithmName = (a) => (ALGORITHMS.find(([k]) => k === a) || [a, a])[1];

// {up, total, state} over a load balancer's health answer: total counts the backends in
// rotation (not disabled); state is healthy / degraded / down / unknown / no backends.
export function summarise(health) {
  if (!health) return null;
  const live = health.filter((b) => b.admin_state !== "disabled");
  const up = live.filter((b) => b.state === "up").length;
  const down = live.filter((b) => b.state === "down").length;
  let state = "unknown";
  if (!live.length) state = "no backends";
  else if (up === live.length) state = "healthy";
  else if (up === 0 && down > 0) state = "down";
  else if (down > 0) state = "degraded";
  return { up, total: live.length, all: health.length, state };
}

export function HealthBadge({ state }) {
  return html`<${Badge} state=${state === "degraded" ? "warn" : state}>${state}<//>`;
}

// The API's reasons for fields a form does not show (for its general error box), or null;
// `shown` are the fields that have a place on the form.
export function restOf(error, shown) {
  if (!error) return null;
  const errors = (error.errors || []).filter((e) => !shown.some((f) => e.field === f || e.field.endsWith("." + f)));
  if (error.errors && error.errors.length && !errors.length) return null;
  if (!errors.length) return error;
  return new Error(errors.map((e) => `${e.field}: ${e.reason}`).join("; "));
}
