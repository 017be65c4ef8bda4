// One domain: its verification (instructions per method, "check now", live status), SSL,
// zone serials on the edge nodes, lock and DNSSEC (with the DS records for the registrar),
// DNS records, traffic, and deletion (refused by the API while locked).
import {
  html, useState, useEffect, api, useApi, useSession, navigate, fieldError,
  Page, Card, Grid, ErrorBox, Notice, Loading, Input, Checkbox, Button, WriteForm, CopyButton,
  Tabs, Table, Badge, fmtTime, fmtAgo,
} from "../ui.js";
import { domainPath, DomainName, VerificationBadge, SslBadge } from "./domains_common.js";
import RecordsEditor from "./domains_records.js";
import Traffic from "./domains_traffic.js";

function Copyable({ label, text }) {
  return html`<div class="dm-copy">
    <span class="dm-copy-label">${label}</span>
    <code class="dm-copy-text">${text}</code>
    <${CopyButton} text=${text} label=${`Copy ${label.toLowerCase()}`} />
  </div>`;
}

function unquote(value) {
  return value.replace(/^"|"$/g, "");
}

function VerifyResult({ result, error }) {
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!result) return null;
  return html`<${Notice} kind=${result.verified ? "good" : "warn"}>
    ${result.verified ? "Verified" : "Not verified yet"} (${result.method}): ${result.reason}
  <//>`;
}

function Verification({ name, status, onChange }) {
  const v = status.verification;
  const { project } = useSession();
  const [method, setMethod] = useState(v.method && ["dns", "file", "email"].includes(v.method) ? v.method : "dns");
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const verify = async (body) => {
    setBusy(true);
    setError(null);
    try {
      setResult(await api("POST", `${domainPath(name)}/verify`, { body, project }));
      onChange();
    } catch (err) {
      setError(err);
      setResult(null);
    } finally {
      setBusy(false);
    }
  };
  const record = v.dns_record;
  const panels = {
    dns: html`<p>Publish this TXT record at the domain's current DNS provider, then check.</p>
      <${Copyable} label="Record name" text=${record.fqdn} />
      <${Copyable} label="Record type" text=${record.type} />
      <${Copyable} label="Record value" text=${unquote(record.values[0] || "")} />
      <p class="muted">TTL ${record.ttl} s. Once this zone is delegated to Edgeplane it serves the record itself.</p>`,
    file: html`<p>Serve this file over HTTP at the domain, then check.</p>
      <${Copyable} label="File URL" text=${v.file_url} />
      <${Copyable} label="File content" text=${v.file_content} />`,
    email: html`<p>A code goes to one of the domain's admin addresses; give it back here.</p>
      <ul class="dm-emails">${v.email_addresses.map((a) => html`<li class="mono">${a}</li>`)}</ul>
      ${v.email_sent_at && html`<p class="muted">Last code sent ${fmtAgo(v.email_sent_at)}.</p>`}
      <${WriteForm} label="Email verification code" onSubmit=${() => verify({ method: "email", code: code.trim() })}>
        <div class="form-row">
          <${Input} label="Code from the email" name="code" value=${code} onValue=${setCode} autocomplete="one-time-code"
            error=${fieldError(error, "code")} />
        </div>
        <div class="actions">
          <${Button} write busy=${busy} onClick=${() => verify({ method: "email" })}>Send a code<//>
          <${Button} type="submit" write busy=${busy} disabled=${!code.trim()}>Check the code<//>
        </div>
      <//>`,
  };
  const verified = v.state === "verified";
  return html`<${Card} title="Ownership verification" id="verification" wide
      actions=${method !== "email" && html`<${Button} write kind="primary" busy=${busy} onClick=${() => verify({ method })}>Check now<//>`}>
    <p>
      <${VerificationBadge} state=${v.state} />
      ${verified
        ? html` ${v.method === "reserved" ? "Verified at once: a reserved name has nothing to prove." : `Verified by ${v.method || "an earlier check"} ${fmtAgo(v.last_checked_at)}.`}`
        : html` Waiting for proof of ownership; this page checks the status every 2 s.`}
      ${v.last_result && v.method !== "reserved" && html` <span class="muted">Last result: ${v.last_result}</span>`}
      ${!verified && v.expires_at && html` <span class="muted">Token expires ${fmtTime(v.expires_at)}.</span>`}
    </p>
    <${Tabs} label="Verification method" current=${method} onSelect=${setMethod}
      tabs=${[["dns", "DNS TXT record"], ["file", "HTTP file"], ["email", "Email"]]} />
    <div role="tabpanel" aria-labelledby=${`tab-${method}`} class="dm-panel">${panels[method]}</div>
    <${VerifyResult} result=${result} error=${fieldError(error, "code") ? null : error} />
  <//>`;
}

function StatusCard({ status }) {
  const cert = status.certificate;
  return html`<${Card} title="Status" id="status">
    <dl class="dm-facts">
      <dt>Verification</dt><dd><${VerificationBadge} state=${status.verification.state} /></dd>
      <dt>SSL</dt><dd><${SslBadge} certificate=${cert} />
        ${cert && html` <span class="muted">until ${fmtTime(cert.not_after)}</span>`}
        ${" "}<a href="#/certificates">Certificates</a></dd>
      <dt>Name servers</dt><dd class="mono">${status.nameservers.join(", ") || "—"}</dd>
      <dt>World's DNS</dt><dd>${status.points_to_edgeplane === null
        ? "not checked yet"
        : status.points_to_edgeplane
          ? html`<${Badge} state="ok">points to Edgeplane<//>`
          : html`<${Badge} state="pending">not pointing here<//> <span class="muted">${status.dns_check_error || ""}</span>`}</dd>
      <dt>Zone serial</dt><dd>${status.serial}</dd>
    </dl>
  <//>`;
}

function NodesCard({ status }) {
  const columns = [
    { key: "name", label: "Edge node" },
    { key: "region", label: "Region" },
    { key: "live", label: "Live", render: (n) => html`<${Badge} state=${n.live ? "live" : "offline"}>${n.live ? "live" : "offline"}<//>` },
    { key: "serial", label: "Serial served", class: "num" },
    { key: "in_sync", label: "Zone", render: (n) => html`<${Badge} state=${n.in_sync ? "ok" : "pending"}>${n.in_sync ? "in sync" : n.error || "updating"}<//>` },
  ];
  return html`<${Card} title="Zone on the edge nodes" id="nodes">
    <${Table} columns=${columns} rows=${status.nodes} rowKey=${(n) => n.node} empty="No edge node yet." />
  <//>`;
}

function Protection({ name, status, onChange }) {
  const { project } = useSession();
  const [error, setError] = useState(null);
  const [pending, setPending] = useState({}); // what was asked, shown until the status has it
  const busy = Object.keys(pending).length > 0;
  const set = async (body) => {
    setPending(body);
    setError(null);
    try {
      await api("PATCH", domainPath(name), { body, project });
      await onChange();
    } catch (err) {
      setError(err);
    } finally {
      setPending({});
    }
  };
  const ds = status.dnssec.ds || [];
  return html`<${Card} title="Lock and DNSSEC" id="protection">
    <${WriteForm} label="Lock and DNSSEC">
      <${Checkbox} label="Locked: refuse deletion" name="locked" checked=${pending.locked ?? status.locked} disabled=${busy}
        onValue=${(locked) => set({ locked })} error=${fieldError(error, "locked")} />
      <${Checkbox} label="DNSSEC: sign the zone" name="dnssec" checked=${pending.dnssec ?? status.dnssec.enabled} disabled=${busy}
        onValue=${(dnssec) => set({ dnssec })} error=${fieldError(error, "dnssec")} />
    <//>
    ${error && !fieldError(error, "locked") && !fieldError(error, "dnssec") && html`<${ErrorBox} error=${error} />`}
    ${status.dnssec.enabled && html`<div class="dm-ds">
      <h3>DS records for the registrar</h3>
      ${ds.length
        ? html`<p class="muted">Give these to the registrar of ${status.domain} to complete the chain of trust.</p>
          ${ds.map((d, i) => html`<${Copyable} label=${ds.length > 1 ? `DS record ${i + 1}` : "DS record"} text=${`${status.domain}. IN DS ${d}`} />`)}`
        : html`<p class="muted">The zone is being signed…</p>`}
    </div>`}
  <//>`;
}

function DeleteDomain({ name, locked }) {
  const { project } = useSession();
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await api("DELETE", domainPath(name), { project });
      navigate("#/domains");
    } catch (err) {
      setError(err);
      setAsking(false);
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="dm-delete">
    ${asking
      ? html`<span>Delete ${name} and its zone?</span>
        <${Button} write kind="danger" busy=${busy} onClick=${remove}>Yes, delete<//>
        <${Button} onClick=${() => setAsking(false)}>Cancel<//>`
      : html`<${Button} write kind="danger" onClick=${() => { setError(null); setAsking(true); }}
          title=${locked ? "The domain is locked: the API refuses to delete it" : undefined}>Delete domain<//>`}
    ${error && html`<${ErrorBox} error=${error} title="Not deleted" />`}
  </div>`;
}

export default function DomainPage({ name }) {
  const domain = useApi(domainPath(name));
  const [verified, setVerified] = useState(false);
  // Live until verified (or gone: a 404 is not polled).
  const gone = domain.error && domain.error.status === 404;
  const status = useApi(gone ? null : `${domainPath(name)}/status`, { every: verified ? undefined : 2000 });
  const s = status.data;
  const state = s && s.verification.state;
  useEffect(() => { if (state) setVerified(state === "verified"); }, [state]);
  const reload = () => Promise.all([status.reload(), domain.reload()]);
  const d = domain.data;
  const title = d ? d.display_name : name;
  return html`<${Page} title=${title}
      subtitle=${d && html`<${DomainName} domain=${d.domain} display=${d.display_name} /> · ${d.environment} · ${d.apex ? "registrable domain" : "subdomain"} · added ${fmtTime(d.created_at)}`}
      actions=${html`<a href="#/domains">All domains</a>`}>
    <${ErrorBox} error=${domain.error || (!s && status.error)} />
    ${!s || !d
      ? !domain.error && html`<${Loading} what="the domain" />`
      : html`
        <${Grid}>
          <${StatusCard} status=${s} />
          <${Protection} name=${d.domain} status=${s} onChange=${reload} />
        </${Grid}>
        <${Verification} name=${d.domain} status=${s} onChange=${reload} />
        <${RecordsEditor} name=${d.domain} />
        <${Traffic} name=${d.domain} />
        <${NodesCard} status=${s} />
        <${Card} title="Delete" id="delete">
          <p class="muted">Removes the domain, its zone and its certificates. Refused while the domain is locked.</p>
          <${DeleteDomain} name=${d.domain} locked=${s.locked} />
        <//>`}
  <//>`;
}
