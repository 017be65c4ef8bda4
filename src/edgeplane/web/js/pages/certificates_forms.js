// Writing certificates: issue one (ACME or the internal CA) and follow its order live, or
// upload a custom chain and key, the API's refusals shown on the fields they name.
import {
  html, useState, useEffect, useRef, useSession, useApi, useAction, api, fieldError, WriteForm, Input,
  Textarea, Select, Checkbox, Button, ErrorBox, Badge, fmtTime,
} from "../ui.js";
import { Expiry } from "./certificates_common.js";

const enc = encodeURIComponent;
export const detailsHref = (domain, version) =>
  `#/certificates/${enc(domain)}${version ? `?version=${enc(version)}` : ""}`;

// The fields an error names that a form shows beside them; the rest goes to an ErrorBox.
function otherError(error, fields) {
  if (!error) return null;
  return fields.some((f) => fieldError(error, f)) ? null : error;
}

function DomainField({ fixed, value, onValue, error, choices }) {
  const id = useRef(`cert-domains-${Math.random().toString(36).slice(2)}`).current;
  if (fixed) return null;
  return html`<div>
    <${Input} label="Domain" name="domain" value=${value} onValue=${onValue} error=${error} list=${id}
      autocomplete="off" hint="A verified domain of this project" required />
    <datalist id=${id}>${(choices || []).map((d) => html`<option value=${d} />`)}</datalist>
  </div>`;
}

// Polls GET /ssl/{domain}/orders/{id} every second until the order is valid or failed.
export function OrderProgress({ domain, id, onEnd }) {
  const [over, setOver] = useState(false);
  const order = useApi(`infrastructure/ssl/${enc(domain)}/orders/${enc(id)}`, { every: over ? undefined : 1000 });
  const o = order.data;
  useEffect(() => {
    if (o && o.status !== "running" && !over) {
      setOver(true);
      onEnd && onEnd(o);
    }
  }, [o && o.status]);
  return html`<section class="cert-order" aria-label=${`Order ${id}`}>
    <p role="status">
      Order <code>${id}</code> for ${domain}:
      ${" "}${o ? html`<${Badge} state=${o.status === "running" ? "pending" : o.status}>${o.status}<//>` : "…"}
    </p>
    <${ErrorBox} error=${order.error} />
    ${o && html`<ol class="cert-steps" aria-label="Order progress">
      ${o.events.map((e) => html`<li><span class="muted">${fmtTime(e.at).slice(11, 19)}</span> ${e.message}</li>`)}
    </ol>`}
    ${o && o.status === "failed" && html`<div class="error-box" role="alert">
      <strong>The order failed${o.error_status ? ` (${o.error_status})` : ""}: </strong>${o.error}
    </div>`}
    ${o && o.result && html`<p>
      Issued <a href=${detailsHref(domain, o.result.certificate.id)}>${o.result.certificate.id}</a>${" "}
      for ${o.result.certificate.names.join(", ")}: <${Expiry} at=${o.result.expires_at} />
    </p>`}
  </section>`;
}

export function IssueForm({ domain: fixed, choices, onDone }) {
  const { project } = useSession();
  const [domain, setDomain] = useState("");
  const [type, setType] = useState("internal");
  const [challenge, setChallenge] = useState("http-01");
  const [www, setWww] = useState(true);
  const [wildcard, setWildcard] = useState(false);
  const [keyType, setKeyType] = useState("ec256");
  const [autoRenew, setAutoRenew] = useState(true);
  const [order, setOrder] = useState(null);
  const name = (fixed || domain).trim();
  const [run, st] = useAction(async () => {
    const body = type === "internal"
      ? { type, auto_renew: autoRenew }
      : { type, challenge, include_www: www, wildcard, key_type: keyType, auto_renew: autoRenew };
    setOrder(null);
    const o = await api("POST", `infrastructure/ssl/${enc(name)}`, { body, query: { wait: "false" }, project });
    setOrder({ domain: o.domain, id: o.id });
    return o;
  });
  const fields = ["domain", "type", "challenge", "include_www", "wildcard", "key_type", "auto_renew"];
  return html`<div>
    <${WriteForm} label="Issue a certificate" onSubmit=${() => run()}>
      <${DomainField} fixed=${fixed} value=${domain} onValue=${setDomain} error=${fieldError(st.error, "domain")} choices=${choices} />
      <${Select} label="Issuer" name="type" value=${type} onValue=${setType} error=${fieldError(st.error, "type")}
        options=${[["internal", "Internal CA"], ["lets_encrypt", "ACME (the configured CA)"]]} />
      ${type === "lets_encrypt" && html`<div class="form-row">
        <${Select} label="Challenge" name="challenge" value=${challenge} onValue=${setChallenge}
          error=${fieldError(st.error, "challenge")}
          options=${[["http-01", "HTTP-01 (answered by every edge node)"], ["dns-01", "DNS-01 (by Edgeplane's DNS)"]]} />
        <${Select} label="Key type" name="key_type" value=${keyType} onValue=${setKeyType}
          error=${fieldError(st.error, "key_type")} options=${[["ec256", "ECDSA P-256"], ["rsa2048", "RSA 2048"]]} />
      </div>
      <${Checkbox} label="Also cover www" checked=${www} onValue=${setWww} error=${fieldError(st.error, "include_www")} />
      <${Checkbox} label="Also cover the wildcard (needs DNS-01)" checked=${wildcard} onValue=${setWildcard}
        error=${fieldError(st.error, "wildcard")} />
`}
      <${Checkbox} label="Renew automatically" checked=${autoRenew} onValue=${setAutoRenew}
        error=${fieldError(st.error, "auto_renew")} />
      <${ErrorBox} error=${otherError(st.error, fields)} />
      <${Button} type="submit" kind="primary" write busy=${st.busy} disabled=${!name}>Issue certificate<//>
    <//>
    ${order && html`<${OrderProgress} key=${order.id} domain=${order.domain} id=${order.id} onEnd=${onDone} />`}
  </div>`;
}

function FileLoader({ label, onText }) {
  const id = useRef(`cert-file-${Math.random().toString(36).slice(2)}`).current;
  return html`<div class="field cert-file">
    <label for=${id}>${label}</label>
    <input id=${id} type="file" accept=".pem,.crt,.cer,.key,.txt,text/plain"
      onChange=${async (e) => {
        const file = e.currentTarget.files && e.currentTarget.files[0];
        if (file) onText(await file.text());
      }} />
  </div>`;
}

export function UploadForm({ domain: fixed, choices, onDone }) {
  const { project } = useSession();
  const [domain, setDomain] = useState("");
  const [cert, setCert] = useState("");
  const [key, setKey] = useState("");
  const name = (fixed || domain).trim();
  const [run, st] = useAction(async () => {
    const done = await api("POST", `infrastructure/ssl/${enc(name)}/upload`, {
      body: { cert_data: cert, key_data: key }, project,
    });
    setKey("");
    onDone && onDone(done);
    return done;
  });
  const fields = ["domain", "cert_data", "key_data"];
  return html`<${WriteForm} label="Upload a custom certificate" onSubmit=${() => run()}>
    <${DomainField} fixed=${fixed} value=${domain} onValue=${setDomain} error=${fieldError(st.error, "domain")} choices=${choices} />
    <${Textarea} label="Certificate chain (PEM, leaf first)" name="cert_data" value=${cert} onValue=${setCert} rows=${6}
      error=${fieldError(st.error, "cert_data")} placeholder="-----BEGIN CERTIFICATE-----" spellcheck="false" />
    <${FileLoader} label="…or load the chain from a file" onText=${setCert} />
    <${Textarea} label="Private key (PEM)" name="key_data" value=${key} onValue=${setKey} rows=${5}
      error=${fieldError(st.error, "key_data")} placeholder="-----BEGIN PRIVATE KEY-----" spellcheck="false"
      autocomplete="off" />
    <${FileLoader} label="…or load the key from a file" onText=${setKey} />
    <${ErrorBox} error=${otherError(st.error, fields)} />
    ${st.done && st.done.certificate && html`<p role="status" class="notice good">
      Uploaded <a href=${detailsHref(st.done.certificate.domain, st.done.certificate.id)}>${st.done.certificate.id}</a>${": "}
      the edge serves it now.
    </p>`}
    <${Button} type="submit" kind="primary" write busy=${st.busy} disabled=${!name || !cert || !key}>Upload certificate<//>
  <//>`;
}
