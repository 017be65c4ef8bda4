// What the Scaling pages share: API paths, a group's status and policies in words, and an
// action's steps as a timeline; the CDN page's helpers for field errors and numbers typed in
// forms.
import { html, Badge, fmtNum, fmtTime, toMs } from "../ui.js";
import { errorAt as reasonAt } from "./cdn_common.js";

export { unshown, numberOrText, useProjectApi } from "./cdn_common.js";

// The API's reason for `field` (or one of its items) to show under it: a problem that names
// one field repeats it in its detail ("min_size: is 3, above max_size (2)"), said once here.
export function errorAt(error, field) {
  const reason = reasonAt(error, field);
  const named = error && error.field;
  return reason && named && reason.startsWith(`${named}: `) ? reason.slice(named.length + 2) : reason;
}

export const SG = "infrastructure/scaling-groups";
export const sgPath = (id) => `${SG}/${encodeURIComponent(id)}`;
export const sgHref = (id) => `#/scaling/${encodeURIComponent(id)}`;
export const lbHref = (id) => `#/load-balancers/${encodeURIComponent(id)}`;

// Each metric a policy scales on, in words (its value is per instance, or the pool's p95).
const METRICS = {
  requests_per_second: "requests/s per instance",
  cpu_percent: "CPU % per instance (mean)",
  upstream_latency_ms: "upstream latency p95 (ms)",
};
export const metricWords = (m) => METRICS[m] || m;

// "requests/s per instance → 50"; "CPU % per instance (mean): above 80 → +1, below 20 → −1"
export function policyWords(p) {
  if (p.type === "target_tracking") return `${metricWords(p.metric)} → ${fmtNum(p.target)}`;
  const steps = (p.steps || []).map((s) => {
    const [side, bound] = s.above !== null && s.above !== undefined ? ["above", s.above] : ["below", s.below];
    return `${side} ${fmtNum(bound)} → ${s.change > 0 ? "+" : "−"}${Math.abs(s.change)}`;
  });
  return `${metricWords(p.metric)}: ${steps.join(", ")}`;
}

export function PolicyList({ policies }) {
  if (!policies || !policies.length) return html`<span class="muted">none: the size changes only when set</span>`;
  return html`<ul class="sc-list">${policies.map((p) => html`<li>${policyWords(p)}</li>`)}</ul>`;
}

// Each policy's metric as the controller last measured it ("not measured yet" until its
// samples cover half the metric window, or while no instance serves).
export function MetricsNow({ metrics, policies }) {
  const names = [...new Set([...(policies || []).map((p) => p.metric), ...Object.keys(metrics || {})])];
  if (!names.length) return html`<span class="muted">—</span>`;
  return html`<ul class="sc-list">${names.map((m) => {
    const v = (metrics || {})[m];
    return html`<li>${metricWords(m)}: ${v === undefined || v === null ? html`<span class="muted">not measured yet</span>` : fmtNum(v)}</li>`;
  })}</ul>`;
}

const STATUS_KIND = { steady: "ok", scaling_out: "warn", scaling_in: "warn", stopped: "failed", deleting: "warn" };
export const words = (s) => String(s || "").replace(/_/g, " ");

// The group's status as a badge; a stopped group says why.
export function GroupStatus({ group }) {
  return html`<span class="sc-status"><${Badge} state=${STATUS_KIND[group.status] || "warn"}>${words(group.status)}<//>
    ${group.status_detail && html` <span class=${group.status === "stopped" ? "sc-stopped" : "muted"}>${group.status_detail}</span>`}</span>`;
}

const INSTANCE_KIND = { serving: "ok", failed: "failed", deleted: "off" };
export function InstanceState({ state }) {
  return html`<${Badge} state=${INSTANCE_KIND[state] || "warn"}>${state}<//>`;
}

const ACTION_KIND = { running: "warn", succeeded: "succeeded", failed: "failed" };
export function ActionStatus({ status }) {
  return html`<${Badge} state=${ACTION_KIND[status] || "warn"}>${status}<//>`;
}

// An action's steps, each at its time after the action started: "triggered +0.0 s ·
// provisioned +0.4 s · ... · done" (the last step of a finished action has its time in the
// action's duration); each step's time and detail are its title.
export function Timeline({ action }) {
  const start = toMs(action.started_at);
  const steps = action.steps || [];
  return html`<span class="sc-timeline">${steps.map((s, i) => {
    const final = i === steps.length - 1 && action.status !== "running" && (s.name === "done" || s.name === "failed");
    const text = final ? s.name : `${s.name} +${Math.max(0, (toMs(s.at) - start) / 1000).toFixed(1)} s`;
    return html`${i ? " · " : ""}<span title=${`${fmtTime(s.at)}${s.detail ? `: ${s.detail}` : ""}`}>${text}</span>`;
  })}</span>`;
}
