// #/certificates/<domain>[?version=<id>]: the certificate the edge serves for a domain, its
// renewal (auto-renewal switch, renew now), one version decoded (names, key, fingerprints,
// chain), every version kept (revoke, with a confirmation), and the domain's alerts.
import {
  html, useState, useSession, useApi, useAction, api, fieldError, Page, Card, Grid, Table, ErrorBox,
  Notice, Loading, Button, Badge, CopyButton, fmtTime, fmtAgo,
} from "../ui.js";
import { issuerLabel, Expiry, CertState, CertificateAlerts } from "./certificates_common.js";
import { IssueForm, UploadForm, detailsHref } from "./certificates_forms.js";

const enc = encodeURIComponent;

function Facts({ items }) {
  return html`<dl class="cert-facts">
    ${items.filter(Boolean).map(([k, v]) => html`<dt>${k}</dt><dd>${v ?? "—"}</dd>`)}
  </dl>`;
}

function Renewal({ status, onChange }) {
  const { project } = useSession();
  const cert = status.certificate;
  const served = status.status === "active" ? cert : null;
  const r = status.renewal;
  const [toggle, ts] = useAction(async (on) => {
    const out = await api("PATCH", `infrastructure/ssl/${enc(status.domain)}`, { body: { auto_renew: on }, project });
    onChange();
    return out;
  });
  const [renew, rs] = useAction(async () => {
    const out = await api("POST", `infrastructure/ssl/${enc(status.domain)}/renew`, { project });
    onChange();
    return out;
  });
  const manual = served && served.issuer === "custom";
  return html`<div>
    <${Facts} items=${[
      ["Auto-renewal", !served ? "—" : manual ? "manual: upload the successor before it expires"
        : html`<${Badge} state=${served.auto_renew ? "on" : "off"}>${served.auto_renew ? "on" : "off"}<//>`],
      r && ["Renewal due", fmtTime(r.due_at)],
      r && r.suggested_by_ca && ["Suggested by the CA", fmtTime(r.suggested_by_ca)],
      r && ["Last attempt", r.last_attempt_at ? `${fmtTime(r.last_attempt_at)} (${fmtAgo(r.last_attempt_at)})` : "none yet"],
      r && r.next_attempt_at && ["Next attempt", fmtTime(r.next_attempt_at)],
      r && ["Last failure", r.last_error ? html`<span class="cert-failure">${r.attempts} failed attempts: ${r.last_error}</span>` : "none"],
      status.ocsp && ["OCSP staple", status.ocsp.stapled
        ? `stapled (${status.ocsp.status || "good"}), next update ${fmtTime(status.ocsp.next_update)}`
        : `not stapled${status.ocsp.last_error ? `: ${status.ocsp.last_error}` : ""}`],
    ]} />
    <div class="actions">
      ${served && !manual && html`<${Button} write busy=${ts.busy} onClick=${() => toggle(!served.auto_renew)}>
        ${served.auto_renew ? "Turn auto-renewal off" : "Turn auto-renewal on"}<//>`}
      <${Button} write busy=${rs.busy} disabled=${!served || manual} onClick=${() => renew()}>Renew now<//>
    </div>
    ${fieldError(ts.error, "auto_renew") && html`<p class="field-error" role="alert">${fieldError(ts.error, "auto_renew")}</p>`}
    <${ErrorBox} error=${fieldError(ts.error, "auto_renew") ? null : ts.error} />
    <${ErrorBox} error=${rs.error} title="Renewal refused" />
    ${rs.done && rs.done.certificate && html`<${Notice} kind="good">Renewed: now serving ${rs.done.certificate.id}.<//>`}
  </div>`;
}

function Version({ domain, id }) {
  const d = useApi(`infrastructure/ssl/${enc(domain)}/certificates/${enc(id)}`);
  if (d.error) return html`<${ErrorBox} error=${d.error} />`;
  if (!d.data) return html`<${Loading} what="the certificate" />`;
  const { certificate: c, chain } = d.data;
  const chainColumns = [
    { key: "n", label: "#", render: (_, i) => (i === 0 ? "1 (leaf)" : String(i + 1)) },
    { key: "subject", label: "Subject", render: (x) => html`<span class="mono">${x.subject}</span>` },
    { key: "issuer", label: "Issuer", render: (x) => html`<span class="mono">${x.issuer}</span>` },
    { key: "valid", label: "Valid", render: (x) => `${fmtTime(x.not_before).slice(0, 10)} → ${fmtTime(x.not_after).slice(0, 10)}` },
    { key: "key", label: "Key", render: (x) => `${x.key_type} (${x.key_size} bits)` },
    { key: "sig", label: "Signature", render: (x) => x.signature_algorithm || "—" },
    { key: "fingerprint", label: "SHA-256", render: (x) => html`<span class="mono cert-fp">${x.fingerprint}</span>` },
  ];
  return html`<div>
    <${Facts} items=${[
      ["Version", html`<code>${c.id}</code> ${d.data.served ? html`<${Badge} state="serving">served now<//>` : ""}`],
      ["Status", html`<${Badge} state=${c.status} />`],
      ["Issuer", issuerLabel(c.issuer)],
      ["Names (SANs)", html`<ul class="cert-names">${c.names.map((n) => html`<li>${n}</li>`)}</ul>`],
      ["Valid from", fmtTime(c.not_before)],
      ["Valid until", html`${fmtTime(c.not_after)} <${Expiry} at=${c.not_after} />`],
      ["Key", `${d.data.key_type} (${d.data.key_size} bits)`],
      ["Serial", html`<span class="mono">${d.data.serial}</span>`],
      ["SHA-256 fingerprint", html`<span class="mono cert-fp">${c.fingerprint}</span> <${CopyButton} text=${c.fingerprint} label="Copy fingerprint" />`],
    ]} />
    <h3>Chain</h3>
    <${Table} columns=${chainColumns} rows=${chain} caption="Certificates of the chain, leaf first" />
    <details class="cert-pem">
      <summary>PEM of the chain</summary>
      <${CopyButton} text=${d.data.chain_pem} label="Copy PEM" />
      <pre tabindex="0" aria-label="PEM of the chain">${d.data.chain_pem}</pre>
    </details>
  </div>`;
}

function Versions({ status, current, onChange }) {
  const { project } = useSession();
  const [confirm, setConfirm] = useState(null);
  const [revoke, rv] = useAction(async (id) => {
    const out = await api("POST", `infrastructure/ssl/${enc(status.domain)}/revoke`, { body: { certificate_id: id }, project });
    setConfirm(null);
    onChange();
    return out;
  });
  const servedId = status.status === "active" && status.certificate ? status.certificate.id : null;
  const columns = [
    { key: "id", label: "Version", render: (c) => c.id === current
      ? html`<code aria-current="true">${c.id}</code> <span class="muted">(shown)</span>`
      : html`<a href=${detailsHref(status.domain, c.id)}>${c.id}</a>` },
    { key: "issuer", label: "Issuer", render: (c) => issuerLabel(c.issuer) },
    { key: "status", label: "Status", render: (c) => html`<${Badge} state=${c.status} />${c.id === servedId ? html` <${Badge} state="serving">served<//>` : ""}` },
    { key: "names", label: "Names", render: (c) => c.names.join(", ") },
    { key: "not_before", label: "Issued", render: (c) => fmtTime(c.not_before).slice(0, 16) },
    { key: "not_after", label: "Expires", render: (c) => html`<${Expiry} at=${c.not_after} />` },
    { key: "revoke", label: "Revoke", render: (c) => c.status === "revoked" ? html`<span class="muted">revoked</span>`
      : html`<${Button} write kind="small danger" onClick=${() => setConfirm(c.id)} aria-label=${`Revoke ${c.id}`}>Revoke…<//>` },
  ];
  return html`<div>
    ${confirm && html`<div class="notice warn cert-confirm" role="alertdialog" aria-labelledby="cert-confirm-text">
      <p id="cert-confirm-text">Revoke <code>${confirm}</code>? The edge stops serving it at once and
        falls back to the previous valid version, if any. This cannot be undone.</p>
      <div class="actions">
        <${Button} write kind="danger" busy=${rv.busy} onClick=${() => revoke(confirm)}>Yes, revoke ${confirm}<//>
        <${Button} onClick=${() => { setConfirm(null); rv.reset(); }}>Cancel<//>
      </div>
    </div>`}
    <${ErrorBox} error=${rv.error} title="Revocation refused" />
    <${Table} columns=${columns} rows=${status.certificates} rowKey=${(c) => c.id} caption="Every version kept, newest first"
      empty="No certificate yet." />
  </div>`;
}

export default function CertificateDetails({ domain, query }) {
  const status = useApi(`infrastructure/ssl/${enc(domain)}`);
  const s = status.data;
  const version = (query && query.get("version")) || (s && s.certificate && s.certificate.id);
  const reload = () => status.reload();
  return html`<${Page} title=${`Certificate of ${domain}`}
      actions=${html`<a class="btn" href="#/certificates">All certificates</a>`}>
    <${ErrorBox} error=${status.error} />
    ${!s ? !status.error && html`<${Loading} what="the certificate" />` : html`
      <${Grid}>
        <${Card} title="Served certificate" id="cert-served">
          <${Facts} items=${[
            ["Status", html`<${CertState} state=${s.status} />`],
            ["Issuer", s.certificate ? issuerLabel(s.certificate.issuer) : "—"],
            ["Names", s.certificate ? s.certificate.names.join(", ") : "—"],
            ["Expires", html`<${Expiry} at=${s.expires_at} />`],
          ]} />
        <//>
        <${Card} title="Renewal" id="cert-renewal">
          <${Renewal} status=${s} onChange=${reload} />
        <//>
      <//>
      <${Card} title="Certificate details" id="cert-version" wide>
        ${version ? html`<${Version} key=${version} domain=${s.domain} id=${version} />`
          : html`<p class="muted">No certificate yet: issue one below.</p>`}
      <//>
      <${Card} title="Versions" id="cert-versions" wide>
        <${Versions} status=${s} current=${version} onChange=${reload} />
      <//>
      <${Grid}>
        <${Card} title="Issue a new certificate" id="cert-issue">
          <${IssueForm} domain=${s.domain} onDone=${reload} />
        <//>
        <${Card} title="Upload a custom certificate" id="cert-upload">
          <${UploadForm} domain=${s.domain} onDone=${reload} />
        <//>
      <//>
      <${Card} title="Renewal notifications" id="cert-alerts" wide>
        <${CertificateAlerts} domain=${s.domain} />
      <//>`}
  <//>`;
}
