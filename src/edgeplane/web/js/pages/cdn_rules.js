// The cache rules, tried in order (the first match wins): the list with move up / down (a PATCH
// with ?position=, which changes the priority), edit and delete, and the rule builder (pattern,
// TTL, bypass, cache key, the origin's Cache-Control, stale options) showing the API's reasons on
// its fields.
import {
  html, useState, useAction, Card, Table, ErrorBox, Input, Select, Checkbox, Button, WriteForm,
  Badge, fmtDuration,
} from "../ui.js";
import { rulePath, CDN, errorAt, unshown, words, numberOrText, useProjectApi } from "./cdn_common.js";

const FIELDS = [
  "pattern", "ttl", "bypass", "origin_cache_control", "stale_if_error", "stale_while_revalidate",
  "cache_key.host", "cache_key.query", "cache_key.headers", "cache_key.cookies", "cache_key",
];
const BLANK = {
  pattern: "", ttl: "3600", bypass: false, occ: "override", staleIfError: true, staleWhileRevalidate: false,
  host: true, query: "all", params: "", headers: "", cookies: "",
};

function fromRule(rule) {
  const q = rule.cache_key.query;
  return {
    pattern: rule.pattern,
    ttl: String(rule.ttl),
    bypass: rule.bypass,
    occ: rule.origin_cache_control,
    staleIfError: rule.stale_if_error,
    staleWhileRevalidate: rule.stale_while_revalidate,
    host: rule.cache_key.host,
    query: Array.isArray(q) ? "list" : q,
    params: Array.isArray(q) ? q.join(", ") : "",
    headers: rule.cache_key.headers.join(", "),
    cookies: rule.cache_key.cookies.join(", "),
  };
}

function toBody(f) {
  const body = {
    pattern: f.pattern.trim(),
    bypass: f.bypass,
    origin_cache_control: f.occ,
    stale_if_error: f.staleIfError,
    stale_while_revalidate: f.staleWhileRevalidate,
    cache_key: {
      host: f.host,
      query: f.query === "list" ? words(f.params) : f.query,
      headers: words(f.headers),
      cookies: words(f.cookies),
    },
  };
  const ttl = numberOrText(f.ttl);
  if (ttl !== undefined) body.ttl = ttl;
  return body;
}

function keySummary(key) {
  const parts = [];
  parts.push(key.host ? "host" : "any host");
  if (key.query === "all") parts.push("whole query");
  else if (key.query === "none") parts.push("no query");
  else parts.push(`query: ${key.query.join(", ")}`);
  if (key.headers.length) parts.push(`headers: ${key.headers.join(", ")}`);
  if (key.cookies.length) parts.push(`cookies: ${key.cookies.join(", ")}`);
  return parts.join("; ");
}

function RuleForm({ rule, onDone, onCancel }) {
  const call = useProjectApi();
  const [f, setF] = useState(() => (rule ? fromRule(rule) : BLANK));
  const set = (patch) => setF((old) => ({ ...old, ...patch }));
  const [submit, sending] = useAction(async () => {
    const body = toBody(f);
    const done = rule
      ? await call("PATCH", rulePath(rule.id), { body })
      : await call("POST", `${CDN}/rules`, { body });
    if (!rule) setF(BLANK);
    onDone(done);
    return done;
  });
  const err = sending.error;
  const label = rule ? `Edit cache rule ${rule.pattern}` : "Add a cache rule";
  return html`<${WriteForm} label=${label} onSubmit=${submit} class="form cdn-rule-form">
    <h3>${rule ? html`Edit rule <code>${rule.pattern}</code>` : "Add a cache rule"}</h3>
    <div class="form-row">
      <${Input} label="Pattern" name="cdn-rule-pattern" value=${f.pattern} onValue=${(pattern) => set({ pattern })}
        placeholder="/static/*" error=${errorAt(err, "pattern")}
        hint="/exact/path, /prefix/* (at most two segments), /* for everything, or *.ext" />
      <${Input} label="TTL (seconds)" name="cdn-rule-ttl" type="number" value=${f.ttl} onValue=${(ttl) => set({ ttl })}
        error=${errorAt(err, "ttl")} hint="How long an object stays fresh" />
      <${Select} label="Origin Cache-Control" name="cdn-rule-occ" value=${f.occ} onValue=${(occ) => set({ occ })}
        error=${errorAt(err, "origin_cache_control")}
        options=${[["override", "Override: the TTL applies whatever the origin says"], ["honour", "Honour: the origin's Cache-Control / Expires win (TTL when it says nothing)"]]} />
    </div>
    <${Checkbox} label="Bypass the cache (never cache what matches)" name="cdn-rule-bypass" checked=${f.bypass}
      onValue=${(bypass) => set({ bypass })} error=${errorAt(err, "bypass")} />
    <${Checkbox} label="Serve stale content while the origin fails (stale-if-error)" name="cdn-rule-sie" checked=${f.staleIfError}
      onValue=${(staleIfError) => set({ staleIfError })} error=${errorAt(err, "stale_if_error")} />
    <${Checkbox} label="Serve stale content at once while refreshing it in the background (stale-while-revalidate)" name="cdn-rule-swr"
      checked=${f.staleWhileRevalidate} onValue=${(staleWhileRevalidate) => set({ staleWhileRevalidate })}
      error=${errorAt(err, "stale_while_revalidate")} />
    <div role="group" aria-labelledby=${rule ? "cdn-key-label-edit" : "cdn-key-label"} class="cdn-key">
      <p id=${rule ? "cdn-key-label-edit" : "cdn-key-label"} class="cdn-group-label">Cache key: what besides the path makes two requests the same object</p>
      <${Checkbox} label="Include the host name (off: one object shared by all domains)" name="cdn-rule-host" checked=${f.host}
        onValue=${(host) => set({ host })} error=${errorAt(err, "cache_key.host")} />
      <div class="form-row">
        <${Select} label="Query string" name="cdn-rule-query" value=${f.query} onValue=${(query) => set({ query })}
          error=${f.query === "list" ? null : errorAt(err, "cache_key.query")}
          options=${[["all", "The whole query string"], ["none", "Ignored"], ["list", "Only these parameters"]]} />
        ${f.query === "list" &&
        html`<${Input} label="Query parameters" name="cdn-rule-params" value=${f.params} onValue=${(params) => set({ params })}
          placeholder="page, lang" hint="Names separated by commas (1 to 16)" error=${errorAt(err, "cache_key.query")} />`}
        <${Input} label="Headers" name="cdn-rule-headers" value=${f.headers} onValue=${(headers) => set({ headers })}
          placeholder="accept-language" hint="Request headers in the key, separated by commas (up to 8)" error=${errorAt(err, "cache_key.headers")} />
        <${Input} label="Cookies" name="cdn-rule-cookies" value=${f.cookies} onValue=${(cookies) => set({ cookies })}
          placeholder="currency" hint="Cookies in the key, separated by commas (up to 8)" error=${errorAt(err, "cache_key.cookies")} />
      </div>
    </div>
    <${ErrorBox} error=${unshown(err, FIELDS)} />
    <div class="actions">
      <${Button} write type="submit" kind="primary" busy=${sending.busy}>${rule ? "Save rule" : "Add rule"}<//>
      ${onCancel && html`<${Button} onClick=${onCancel}>Cancel<//>`}
    </div>
  <//>`;
}

function RowActions({ rule, index, count, onMove, onEdit, onDelete, busy }) {
  const [asking, setAsking] = useState(false);
  const p = rule.pattern;
  if (asking)
    return html`<div class="cdn-row-actions">
      <${Button} write kind="small danger" busy=${busy} aria-label=${`Confirm: delete rule ${p}`} onClick=${() => onDelete(rule)}>Delete<//>
      <${Button} kind="small" aria-label=${`Keep rule ${p}`} onClick=${() => setAsking(false)}>Keep<//>
    </div>`;
  return html`<div class="cdn-row-actions">
    <${Button} write kind="small" disabled=${index === 0 || busy} aria-label=${`Move rule ${p} up`} onClick=${() => onMove(rule, index - 1)}>Up<//>
    <${Button} write kind="small" disabled=${index === count - 1 || busy} aria-label=${`Move rule ${p} down`} onClick=${() => onMove(rule, index + 1)}>Down<//>
    <${Button} write kind="small" aria-label=${`Edit rule ${p}`} onClick=${() => onEdit(rule)}>Edit<//>
    <${Button} write kind="small danger" aria-label=${`Delete rule ${p}`} onClick=${() => setAsking(true)}>Delete…<//>
  </div>`;
}

export default function RulesCard({ rules, onChanged }) {
  const call = useProjectApi();
  const [editing, setEditing] = useState(null);
  const [move, moving] = useAction(async (rule, position) => {
    await call("PATCH", rulePath(rule.id), { body: {}, query: { position } });
    onChanged();
  });
  const [remove, removing] = useAction(async (rule) => {
    await call("DELETE", rulePath(rule.id));
    if (editing && editing.id === rule.id) setEditing(null);
    onChanged();
  });
  const list = rules || null;
  const columns = [
    { key: "order", label: "Order", class: "num", render: (_r, i) => i + 1 },
    { key: "pattern", label: "Pattern", render: (r) => html`<code>${r.pattern}</code>` },
    { key: "ttl", label: "TTL", render: (r) => (r.bypass ? "—" : html`${r.ttl} s <span class="muted">(${fmtDuration(r.ttl)})</span>`) },
    { key: "bypass", label: "Caching", render: (r) => (r.bypass ? html`<${Badge} state="warn">bypass<//>` : html`<${Badge} state="on">cache<//>`) },
    { key: "key", label: "Cache key", render: (r) => keySummary(r.cache_key) },
    { key: "occ", label: "Origin Cache-Control", render: (r) => (r.origin_cache_control === "honour" ? "honoured" : "overridden") },
    {
      key: "stale",
      label: "Stale",
      render: (r) => [r.stale_if_error && "if error", r.stale_while_revalidate && "while revalidate"].filter(Boolean).join(", ") || "never",
    },
    {
      key: "actions",
      label: "Actions",
      render: (r, i) => html`<${RowActions} rule=${r} index=${i} count=${list.length} busy=${moving.busy || removing.busy}
        onMove=${move} onEdit=${setEditing} onDelete=${remove} />`,
    },
  ];
  return html`<${Card} title="Cache rules" id="cdn-rules">
    <p class="muted">Tried from the top: the first rule whose pattern matches a request decides how it is cached.</p>
    <${Table} columns=${columns} rows=${list} rowKey=${(r) => r.id} caption="Cache rules in priority order"
      empty="No cache rule: the edge follows the origin's Cache-Control." />
    <${ErrorBox} error=${moving.error || removing.error} />
    ${editing
      ? html`<${RuleForm} key=${`edit-${editing.id}`} rule=${editing} onDone=${() => { setEditing(null); onChanged(); }} onCancel=${() => setEditing(null)} />`
      : html`<${RuleForm} key="add" onDone=${onChanged} />`}
  <//>`;
}
