// The project's CDN config: where the edge fetches what it does not serve from cache (URL
// origins, or one load balancer), HTTPS at the edge, and the domains it serves. POST
// /infrastructure/cdn replaces the whole config, so the current cache rules and security
// settings are sent back as they are.
import {
  html, useState, useApi, useAction, Card, Notice, ErrorBox, Input, Select, Checkbox, Button,
  WriteForm, Badge, fmtTime,
} from "../ui.js";
import { CDN, errorAt, unshown, numberOrText, useProjectApi } from "./cdn_common.js";

const SHOWN = ["origins", "security.force_https", "security.hsts_max_age", "security.hsts_include_subdomains"];

function initial(deployment) {
  const origins = deployment ? deployment.origins : [];
  const lb = origins.find((o) => o.load_balancer);
  const urls = origins.filter((o) => o.url).map((o) => ({ url: o.url, weight: String(o.weight), backup: o.backup }));
  const security = deployment ? deployment.security : { force_https: true, hsts_max_age: 0, hsts_include_subdomains: false };
  return {
    mode: lb ? "lb" : "url",
    lb: lb ? lb.load_balancer : "",
    urls: urls.length ? urls : [{ url: "", weight: "1", backup: false }],
    forceHttps: security.force_https,
    hsts: String(security.hsts_max_age),
    hstsSub: security.hsts_include_subdomains,
  };
}

function Origins({ deployment }) {
  if (!deployment || !deployment.origins.length) return html`<p class="muted">No origin yet: the edge answers 502 for the project's domains.</p>`;
  return html`<ul class="cdn-origins">
    ${deployment.origins.map((o) =>
      o.load_balancer
        ? html`<li>Load balancer <a href=${`#/load-balancers/${encodeURIComponent(o.load_balancer)}`}><code>${o.load_balancer}</code></a></li>`
        : html`<li><code>${o.url}</code> weight ${o.weight}${o.backup ? html` <${Badge} state="warn">backup<//>` : ""}</li>`,
    )}
  </ul>`;
}

function OriginForm({ deployment, onSaved }) {
  const call = useProjectApi();
  const [f, setF] = useState(() => initial(deployment));
  const lbs = useApi("infrastructure/loadbalancer", { query: { limit: 1000 } });
  const set = (patch) => setF((old) => ({ ...old, ...patch }));
  const setRow = (i, patch) => set({ urls: f.urls.map((r, n) => (n === i ? { ...r, ...patch } : r)) });
  const [save, saving] = useAction(async () => {
    // The rules as stored now (with their ids), so that replacing the config keeps them.
    const rules = await call("GET", `${CDN}/rules`);
    const origins =
      f.mode === "lb"
        ? [{ load_balancer: f.lb || null }]
        : f.urls.map((r) => ({ url: r.url.trim(), weight: numberOrText(r.weight), backup: r.backup }));
    const security = {
      ...(deployment ? deployment.security : {}),
      force_https: f.forceHttps,
      hsts_max_age: numberOrText(f.hsts),
      hsts_include_subdomains: f.hstsSub,
    };
    const done = await call("POST", CDN, { body: { origins, cache_rules: rules, security } });
    onSaved(done.cdn_deployment);
    return done;
  });
  const err = saving.error;
  const lbOptions = [["", "Choose a load balancer"], ...((lbs.data && lbs.data.items) || []).map((lb) => [lb.id, `${lb.name} (${lb.id})`])];
  return html`<${WriteForm} label="CDN origin" onSubmit=${save}>
    <${Select} label="Origin type" name="cdn-origin-type" value=${f.mode} onValue=${(mode) => set({ mode })}
      options=${[["url", "URL origins (http(s)://host[:port])"], ["lb", "A load balancer of the project"]]} />
    ${f.mode === "lb"
      ? html`<${Select} label="Load balancer" name="cdn-lb" value=${f.lb} onValue=${(lb) => set({ lb })} options=${lbOptions}
          error=${errorAt(err, "origins.0.load_balancer") || errorAt(err, "origins.0")} hint="The edge sends cache misses to its backends." />`
      : html`<div role="group" aria-labelledby="cdn-origins-label" class="cdn-origin-rows">
          <p id="cdn-origins-label" class="cdn-group-label">URL origins</p>
          ${f.urls.map(
            (r, i) => html`<div class="form-row cdn-origin-row" key=${i}>
              <${Input} label=${`Origin ${i + 1} URL`} name=${`cdn-origin-url-${i}`} value=${r.url} placeholder="http://10.0.0.5:8080"
                onValue=${(url) => setRow(i, { url })} error=${errorAt(err, `origins.${i}.url`) || errorAt(err, `origins.${i}`)} />
              <${Input} label=${`Origin ${i + 1} weight`} name=${`cdn-origin-weight-${i}`} type="number" value=${r.weight}
                onValue=${(weight) => setRow(i, { weight })} error=${errorAt(err, `origins.${i}.weight`)} />
              <${Checkbox} label=${`Origin ${i + 1} is a backup`} name=${`cdn-origin-backup-${i}`} checked=${r.backup}
                onValue=${(backup) => setRow(i, { backup })} error=${errorAt(err, `origins.${i}.backup`)} />
              ${f.urls.length > 1 &&
              html`<${Button} write kind="small" aria-label=${`Remove origin ${i + 1}`}
                onClick=${() => set({ urls: f.urls.filter((_, n) => n !== i) })}>Remove<//>`}
            </div>`,
          )}
          ${errorAt(err, "origins") && !err.errors.some((e) => /^origins\.\d/.test(e.field)) &&
          html`<p class="field-error" role="alert">${errorAt(err, "origins")}</p>`}
          <${Button} write kind="small" onClick=${() => set({ urls: [...f.urls, { url: "", weight: "1", backup: false }] })}>Add origin<//>
        </div>`}
    <h3>HTTPS at the edge</h3>
    <${Checkbox} label="Redirect HTTP to HTTPS (308) when the domain has a certificate" name="cdn-force-https" checked=${f.forceHttps}
      onValue=${(forceHttps) => set({ forceHttps })} error=${errorAt(err, "security.force_https")} />
    <div class="form-row">
      <${Input} label="HSTS max age (seconds, 0: no HSTS header)" name="cdn-hsts" type="number" value=${f.hsts}
        onValue=${(hsts) => set({ hsts })} error=${errorAt(err, "security.hsts_max_age")} />
    </div>
    <${Checkbox} label="HSTS includes subdomains" name="cdn-hsts-sub" checked=${f.hstsSub}
      onValue=${(hstsSub) => set({ hstsSub })} error=${errorAt(err, "security.hsts_include_subdomains")} />
    <${ErrorBox} error=${unshown(err, SHOWN)} />
    <div class="actions">
      <${Button} write type="submit" kind="primary" busy=${saving.busy}>${deployment ? "Save CDN config" : "Set up the CDN"}<//>
    </div>
  <//>`;
}

function RemoveConfig({ onChanged }) {
  const call = useProjectApi();
  const [asking, setAsking] = useState(false);
  const [remove, removing] = useAction(async () => {
    await call("DELETE", CDN);
    setAsking(false);
    onChanged();
  });
  return html`<div class="cdn-remove">
    ${asking
      ? html`<p>Remove the CDN config? The edge stops serving the project's domains until a new one is set.</p>
          <div class="actions">
            <${Button} write kind="danger" busy=${removing.busy} onClick=${remove}>Remove the CDN config<//>
            <${Button} onClick=${() => setAsking(false)}>Keep it<//>
          </div>`
      : html`<${Button} write kind="danger" onClick=${() => setAsking(true)}>Remove CDN config…<//>`}
    <${ErrorBox} error=${removing.error} />
  </div>`;
}

export default function ConfigCard({ state, onChanged }) {
  const deployment = state.cdn_deployment;
  const [saved, setSaved] = useState(null);
  const onSaved = (d) => {
    setSaved(d.revision);
    onChanged();
  };
  return html`<${Card} title="Origin and domains" id="cdn-config">
    ${!state.configured &&
    html`<${Notice}>This project has no CDN config yet. Set an origin below: the edge then serves the project's active domains from it, with the cache rules below.<//>`}
    <dl class="facts">
      <dt>Domains served</dt>
      <dd>
        ${state.domains.length
          ? html`<ul class="cdn-domains">${state.domains.map((d) => html`<li><a href=${`#/domains/${encodeURIComponent(d)}`}>${d}</a></li>`)}</ul>`
          : html`<span class="muted">No active domain yet: <a href="#/domains">add one on the Domains page</a>.</span>`}
      </dd>
      <dt>Origins</dt>
      <dd><${Origins} deployment=${deployment} /></dd>
      ${deployment &&
      html`<dt>Revision</dt><dd>${deployment.revision ?? "—"} (changed ${fmtTime(deployment.updated_at)})</dd>`}
    </dl>
    <${OriginForm} key=${deployment ? `${deployment.revision}-${deployment.updated_at}` : "none"} deployment=${deployment} onSaved=${onSaved} />
    ${saved && deployment && deployment.revision === saved && html`<${Notice} kind="good">CDN config saved (revision ${saved}); the edge nodes apply it within seconds.<//>`}
    ${deployment && html`<${RemoveConfig} onChanged=${onChanged} />`}
  <//>`;
}
