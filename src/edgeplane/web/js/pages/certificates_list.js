// #/certificates: the project's domains with the certificate the edge serves for each (paged
// by name, as GET /ssl gives them), issuing and uploading, and the renewal notifications.
import {
  html, useState, useApi, navigate, Page, Card, Grid, Table, ErrorBox, Button, Input, fmtTime,
} from "../ui.js";
import { issuerLabel, Expiry, CertState, CertificateAlerts } from "./certificates_common.js";
import { IssueForm, UploadForm, detailsHref } from "./certificates_forms.js";

const PAGE = 50;

function renewalCell(c) {
  const cert = c.certificate;
  if (!cert || c.status === "none") return "—";
  if (cert.issuer === "custom") return html`<span class="muted">manual (uploaded)</span>`;
  if (!cert.auto_renew) return html`<span class="badge warn">off</span>`;
  const r = c.renewal;
  const next = r && (r.next_attempt_at || r.due_at);
  return html`<span class="badge good">on</span>${next && html` <span class="muted">next ${fmtTime(next).slice(0, 16)}</span>`}`;
}

function failureCell(c) {
  const r = c.renewal;
  if (!r || !r.last_error) return html`<span class="muted">none</span>`;
  return html`<span class="cert-failure">${r.attempts} failed: ${r.last_error}</span>`;
}

const COLUMNS = [
  { key: "domain", label: "Domain", render: (c) => html`<a href=${detailsHref(c.domain)}>${c.domain}</a>` },
  { key: "status", label: "Status", render: (c) => html`<${CertState} state=${c.status} />` },
  { key: "issuer", label: "Issuer", render: (c) => (c.certificate ? issuerLabel(c.certificate.issuer) : "—") },
  { key: "names", label: "Names", render: (c) => (c.certificate ? c.certificate.names.join(", ") : "—") },
  { key: "expires_at", label: "Expires", render: (c) => html`<${Expiry} at=${c.expires_at} />` },
  { key: "renewal", label: "Auto-renewal", render: renewalCell },
  { key: "failure", label: "Last renewal failure", render: failureCell },
  { key: "versions", label: "Versions", class: "num" },
];

// GET /ssl lists the names after its cursor: to start at `from`, a cursor just before it.
function cursorBefore(from) {
  const f = from.trim().toLowerCase();
  return f ? f.slice(0, -1) + String.fromCharCode(f.charCodeAt(f.length - 1) - 1) + "~" : "";
}

// #/certificates?from=<text>: the pages from the first name at or after <text>.
export default function CertificateList({ from: start = "" }) {
  const [cursor, setCursor] = useState(cursorBefore(start));
  const [back, setBack] = useState([]);
  const [from, setFrom] = useState(start);
  const list = useApi("infrastructure/ssl", { query: { cursor: cursor || undefined, limit: PAGE } });
  const rows = list.data ? list.data.certificates : null;
  const choices = (rows || []).filter((c) => c.domain_status === "active").map((c) => c.domain);
  const next = list.data && list.data.next_cursor;
  const go = (c) => { setBack([...back, cursor]); setCursor(c); };
  const counts = (rows || []).reduce((n, c) => ({ ...n, [c.status]: (n[c.status] || 0) + 1 }), {});
  return html`<${Page} title="SSL certificates"
      subtitle="What the edge serves for each domain: issuer, expiry and renewal; issue, upload, renew, revoke.">
    <${Card} title="Certificates" id="cert-list" wide
      actions=${html`<a class="btn small" href="/api/v1/infrastructure/ca.pem" download="edgeplane-ca.pem">Internal CA root (PEM)</a>`}>
      <form class="form cert-jump" aria-label="Find domains" onSubmit=${(e) => {
        e.preventDefault();
        const f = from.trim().toLowerCase();
        navigate(f ? `#/certificates?from=${encodeURIComponent(f)}` : "#/certificates");
      }}>
        <${Input} label="Show domains from" name="from" value=${from} onValue=${setFrom} inline placeholder="e.g. shop" />
        <${Button} type="submit">Show<//>
      </form>
      <${ErrorBox} error=${list.error} />
      <p class="muted" role="status">
        ${rows ? `${rows.length} ${rows.length === 1 ? "domain" : "domains"} on this page: ${counts.active || 0} with an active certificate, ${counts.expired || 0} expired, ${counts.none || 0} without one.` : "Loading…"}
      </p>
      <${Table} columns=${COLUMNS} rows=${rows} rowKey=${(c) => c.domain} caption="Certificates by domain"
        empty="No domains yet: add one on the Domains page." />
      <div class="actions cert-pager">
        <${Button} kind="small" disabled=${!back.length}
          onClick=${() => { setCursor(back[back.length - 1]); setBack(back.slice(0, -1)); }}>Previous page<//>
        <${Button} kind="small" disabled=${!next} onClick=${() => go(next)}>Next page<//>
      </div>
    <//>
    <${Grid}>
      <${Card} title="Issue a certificate" id="cert-issue">
        <${IssueForm} choices=${choices} onDone=${() => list.reload()} />
      <//>
      <${Card} title="Upload a custom certificate" id="cert-upload">
        <${UploadForm} choices=${choices} onDone=${() => list.reload()} />
      <//>
    <//>
    <${Card} title="Renewal notifications" id="cert-alerts" wide>
      <${CertificateAlerts} />
    <//>
  <//>`;
}
