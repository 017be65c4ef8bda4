// Compliance (docs/security-score.md): the report (each active domain against each requirement
// of the project's policy: pass / fail / unknown, the evidence, since when) and the policy
// editor (PUT /security/compliance replaces the whole list; the API names a requirement by its
// position, shown on that requirement's row).
import {
  html, useState, useApi, useAction, Card, Table, ErrorBox, Notice, Loading, Input, Select, Checkbox,
  Button, WriteForm, Badge, ApiError, fmtAgo, fmtTime,
} from "../ui.js";
import { SEC, numberOrText, useProjectApi, Intro } from "./security_common.js";

const STATUS = { pass: "ok", fail: "failed", unknown: "unknown" };
const VALUE_LABEL = {
  hsts_min_age: "Least HSTS max-age (seconds)",
  tls_min_version: "Oldest TLS version allowed",
  no_expiring_certs: "Least days left",
  min_score: "Least score (0-100)",
};

function DomainReport({ d }) {
  return html`<details class="sec-compliance-domain" open=${!d.compliant}>
    <summary>
      <strong>${d.domain}</strong>${" "}
      ${d.compliant
        ? html`<${Badge} state="ok">compliant<//>`
        : html`<${Badge} state="failed">${d.failing.length} failing<//>`}
    </summary>
    <${Table}
      caption=${`Requirements of ${d.domain}`}
      rows=${d.requirements}
      rowKey=${(r) => r.id}
      columns=${[
        { key: "id", label: "Requirement", render: (r) => html`<code>${r.id}</code>${r.value !== null ? html` ${r.value}` : ""}` },
        { key: "status", label: "Status", render: (r) => html`<${Badge} state=${STATUS[r.status] || "unknown"}>${r.status === "pass" ? "met" : r.status === "fail" ? "not met" : "unknown"}<//>` },
        { key: "evidence", label: "Evidence", render: (r) => r.evidence || "—" },
        { key: "since", label: "Since", render: (r) => (r.since ? html`<span title=${fmtTime(r.since)}>${fmtAgo(r.since)}</span>` : "—") },
        { key: "checked_at", label: "Checked", render: (r) => (r.checked_at ? html`<span title=${fmtTime(r.checked_at)}>${fmtAgo(r.checked_at)}</span>` : "not yet") },
      ]}
    />
  </details>`;
}

function Report({ report }) {
  if (!report.requirements.length) {
    return html`<p class="muted">No compliance policy in this project: choose requirements below, or from the
      command line: <code>edgeplane security compliance set https_only hsts_min_age waf_blocking</code>.</p>`;
  }
  return html`<p>
      ${report.compliant
        ? html`<${Badge} state="ok">compliant<//> every domain meets every requirement`
        : html`<${Badge} state="failed">not compliant<//> ${report.failing} requirement${report.failing === 1 ? "" : "s"} not met across the domains`}
      <span class="muted"> · evaluated ${report.evaluated_at ? fmtAgo(report.evaluated_at) : "not yet"}</span>
    </p>
    ${report.domains.length
      ? report.domains.map((d) => html`<${DomainReport} key=${d.domain} d=${d} />`)
      : html`<p class="muted">No active domain to hold to the policy yet.</p>`}`;
}

function initial(policy) {
  const chosen = Object.fromEntries(policy.requirements.map((r) => [r.id, r.value]));
  return Object.fromEntries(policy.catalogue.map((c) => [c.id, {
    on: c.id in chosen,
    value: c.id in chosen && chosen[c.id] !== null ? String(chosen[c.id]) : c.value === null ? "" : String(c.value),
  }]));
}

function PolicyForm({ policy, onSaved }) {
  const call = useProjectApi();
  const [f, setF] = useState(() => initial(policy));
  const setReq = (id, patch) => setF((old) => ({ ...old, [id]: { ...old[id], ...patch } }));
  const chosen = policy.catalogue.filter((c) => f[c.id].on);
  const [save, saving] = useAction(async () => {
    const requirements = chosen.map((c) => (c.value === null ? { id: c.id } : { id: c.id, value: c.values ? f[c.id].value : numberOrText(f[c.id].value) }));
    const done = await call("PUT", `${SEC}/compliance`, { body: { requirements } });
    onSaved(done);
    return done;
  });
  const err = saving.error;
  // The API names a requirement by its place in the list sent: requirements.2(.value).
  const reason = (id) => {
    if (!(err instanceof ApiError)) return null;
    const i = chosen.findIndex((c) => c.id === id);
    const hit = err.errors.find((e) => e.field === `requirements.${i}` || e.field.startsWith(`requirements.${i}.`));
    return i >= 0 && hit ? hit.reason : null;
  };
  const general = err && !(err instanceof ApiError && err.errors.length && err.errors.every((e) => /^requirements\.\d+/.test(e.field))) ? err : null;
  return html`<${WriteForm} label="Compliance policy" onSubmit=${save}>
    <h3>Policy</h3>
    <p class="muted">Every active domain is held to the requirements ticked here; a requirement not met raises an
      alert (rule <code>compliance-failed</code>).</p>
    <div class="sec-policy">
      ${policy.catalogue.map((c) => html`<div class="form-row sec-policy-row" key=${c.id}>
        <${Checkbox} label=${html`<code>${c.id}</code>: ${c.description.replace("VALUE", f[c.id].value || "…")}`} name=${`policy-${c.id}`}
          checked=${f[c.id].on} onValue=${(on) => setReq(c.id, { on })} error=${c.value === null ? reason(c.id) : null} />
        ${c.value !== null && (c.values
          ? html`<${Select} label=${VALUE_LABEL[c.id] || `${c.id} value`} name=${`policy-${c.id}-value`} value=${f[c.id].value} options=${c.values}
              onValue=${(value) => setReq(c.id, { value })} error=${reason(c.id)} />`
          : html`<${Input} label=${VALUE_LABEL[c.id] || `${c.id} value`} name=${`policy-${c.id}-value`} type="number" value=${f[c.id].value}
              onValue=${(value) => setReq(c.id, { value })} error=${reason(c.id)} />`)}
      </div>`)}
    </div>
    <${ErrorBox} error=${general} />
    <div class="actions">
      <${Button} write type="submit" kind="primary" busy=${saving.busy}>Save the policy<//>
    </div>
  <//>`;
}

export default function ComplianceCard() {
  const report = useApi(`${SEC}/compliance/report`, { every: 15000 });
  const policy = useApi(`${SEC}/compliance`);
  const [saved, setSaved] = useState(null);
  return html`<${Card} title="Compliance" id="sec-compliance">
    <${Intro}>The project's policy: requirements every active domain is held to continuously, judged from its
      newest security score. The CLI has the same: <code>edgeplane security compliance report</code>.<//>
    <${ErrorBox} error=${report.error || policy.error} />
    ${report.data ? html`<${Report} report=${report.data} />` : html`<${Loading} what="the compliance report" />`}
    ${policy.data
      ? html`<${PolicyForm} key=${policy.data.updated_at || "none"} policy=${policy.data}
          onSaved=${(p) => { setSaved(p); policy.reload(); report.reload(); }} />`
      : html`<${Loading} what="the compliance policy" />`}
    ${saved && html`<${Notice} kind="good">Policy saved with ${saved.requirements.length} requirement${saved.requirements.length === 1 ? "" : "s"}: the report above follows from the newest scores.<//>`}
  <//>`;
}
