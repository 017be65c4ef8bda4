// What the Security page's cards share: API paths, and the CDN page's helpers for field errors,
// numbers typed in forms and calls made by hand in the page's project.
import { html } from "../ui.js";

export { errorAt, unshown, numberOrText, words, useProjectApi } from "./cdn_common.js";

export const CDN = "infrastructure/cdn";
export const WAF = `${CDN}/waf`;
export const UNDER_ATTACK = `${CDN}/under-attack`;
export const BOTS = `${CDN}/bots`;
export const SEC = "security";

// A number of bytes as the limits are written (16 KiB, 10 MiB).
export function fmtSize(n) {
  if (n === null || n === undefined) return null;
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

// Evidence of a check ({offered: ["TLSv1.2"], stapled: false, ...}) in one line of words.
export function evidenceText(evidence) {
  const parts = Object.entries(evidence || {})
    .filter(([, v]) => v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => {
      const value = Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : String(v);
      return `${k.replace(/_/g, " ")}: ${value}`;
    });
  const text = parts.join("; ");
  return text.length > 240 ? `${text.slice(0, 237)}…` : text;
}

// A small "what this does" paragraph under a card's heading.
export function Intro({ children }) {
  return html`<p class="muted sec-intro">${children}</p>`;
}
