// Pieces the certificate pages share: issuer names, days left coloured, renewal notifications.
import { html, useApi, Table, Badge, ErrorBox, fmtTime, fmtAgo, toMs } from "../ui.js";

const ISSUERS = { lets_encrypt: "ACME", internal: "Internal CA", custom: "Custom" };
export const issuerLabel = (issuer) => ISSUERS[issuer] || issuer || "—";

export function daysLeft(notAfter) {
  return notAfter ? (toMs(notAfter) - Date.now()) / 86400000 : null;
}

// Days until expiry, coloured: red under 7 days (or expired), amber under 30, green beyond.
export function Expiry({ at }) {
  const days = daysLeft(at);
  if (days === null) return html`<span class="muted">—</span>`;
  const kind = days < 7 ? "bad" : days < 30 ? "warn" : "good";
  const text = days < 0 ? "expired" : `${Math.floor(days)} days left`;
  return html`<span class="cert-expiry"><span class=${`badge ${kind}`}>${text}</span>
    <span class="muted"> ${fmtTime(at).slice(0, 10)}</span></span>`;
}

export function CertState({ state }) {
  return html`<${Badge} state=${state === "none" ? "pending" : state}>${state === "none" ? "no certificate" : state}<//>`;
}

// Alerts about certificates: failed renewals, and incidents of the rules on
// certificate_days_left (the 30/7/1-day expiry warnings); `domain` narrows to one.
export function CertificateAlerts({ domain }) {
  const failed = useApi("alerts", { query: { kind: "certificate_renewal_failed", limit: 50 }, every: 15000 });
  const incidents = useApi("alerts", { query: { kind: "rule", limit: 200 }, every: 15000 });
  const rules = useApi("alerts/rules");
  const certRules = new Set((rules.data || []).filter((r) => r.series === "certificate_days_left").map((r) => r.id));
  const names = Object.fromEntries((rules.data || []).map((r) => [r.id, r.name]));
  let rows = null;
  if (failed.data && incidents.data && rules.data) {
    rows = [...failed.data, ...incidents.data.filter((a) => certRules.has(a.rule))]
      .filter((a) => !domain || a.object_id === domain || (a.details || {}).domain === domain)
      .sort((a, b) => toMs(b.created_at) - toMs(a.created_at));
  }
  const columns = [
    { key: "state", label: "State", render: (a) => html`<${Badge} state=${a.state} />` },
    { key: "severity", label: "Severity" },
    { key: "what", label: "Alert", render: (a) => (a.rule ? names[a.rule] || a.rule : "Renewal failed") },
    { key: "object_id", label: "Domain", render: (a) => (a.details || {}).domain || a.object_id },
    { key: "message", label: "Message" },
    { key: "created_at", label: "Since", render: (a) => html`<span title=${fmtTime(a.created_at)}>${fmtAgo(a.created_at)}</span>` },
  ];
  return html`<div>
    <${ErrorBox} error=${failed.error || incidents.error || rules.error} />
    <${Table} columns=${columns} rows=${rows} rowKey=${(a) => a.id}
      empty="No certificate alerts: no failed renewal, nothing close to expiry." />
  </div>`;
}
