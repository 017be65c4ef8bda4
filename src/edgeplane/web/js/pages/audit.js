// The audit log: who changed what, when, page by page, filtered as the API allows (kind, object,
// platform-wide events for platform admins); an event's object before and after, side by side
// with the changed fields marked.
import {
  html, useState, Page, Card, useApi, Table, ErrorBox, Button, Input, Checkbox, Badge, useSession, navigate, fmtTime, fmtAgo,
} from "../ui.js";

// {"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves.
function flatten(obj, prefix = "", out = {}) {
  if (obj === null || obj === undefined) return out;
  Object.entries(obj).forEach(([k, v]) => {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) flatten(v, key, out);
    else out[key] = v;
  });
  return out;
}

const show = (v) => (v === undefined ? "" : JSON.stringify(v));

function Diff({ event }) {
  const before = flatten(event.before);
  const after = flatten(event.after);
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const [all, setAll] = useState(false);
  const rows = keys
    .map((k) => ({ k, b: show(before[k]), a: show(after[k]) }))
    .map((r) => ({ ...r, changed: r.a !== r.b }))
    .filter((r) => all || r.changed || !event.before || !event.after);
  return html`<${Card} title=${`Event ${event.id}: ${event.action} ${event.kind} ${event.object_id}`} id="audit-diff">
    <p>${event.actor} · ${fmtTime(event.at)} · revision ${event.revision}${event.project ? ` · project ${event.project}` : " · platform"}</p>
    <${Checkbox} label="Show unchanged fields too" name="all-fields" checked=${all} onValue=${setAll} />
    <${Table}
      caption="Before and after"
      empty="No field changed."
      rows=${rows}
      rowKey=${(r) => r.k}
      rowClass=${(r) => (r.changed && event.before && event.after ? "ops-changed" : undefined)}
      columns=${[
        { key: "k", label: "Field", render: (r) => html`<code>${r.k}</code>` },
        { key: "b", label: "Before", render: (r) => (r.b === "" ? html`<span class="muted">—</span>` : html`<code class="ops-diff-old">${r.b}</code>`) },
        { key: "a", label: "After", render: (r) => (r.a === "" ? html`<span class="muted">—</span>` : html`<code class="ops-diff-new">${r.a}</code>`) },
      ]}
    />
  <//>`;
}

const ACTION = { create: "good", update: "warn", delete: "bad" };

export default function Audit({ query }) {
  const ctx = useSession();
  const [kind, setKind] = useState(query.get("kind") || "");
  const [objectId, setObjectId] = useState(query.get("object_id") || "");
  const [global, setGlobal] = useState(false);
  const [applied, setApplied] = useState({ kind: query.get("kind") || "", object_id: query.get("object_id") || "", global: false });
  const [cursors, setCursors] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [selected, setSelected] = useState(null);
  const events = useApi("audit", {
    query: { kind: applied.kind || undefined, object_id: applied.object_id || undefined, include_global: applied.global || undefined, cursor: cursor || undefined, limit: 50 },
  });
  const apply = (e) => {
    e.preventDefault();
    setApplied({ kind: kind.trim(), object_id: objectId.trim(), global });
    setCursors([]);
    setCursor(null);
    setSelected(null);
  };
  const items = events.data ? events.data.items : undefined;
  return html`<${Page} title="Audit log" subtitle="Every change: who, what, to which object, when">
    <${Card} title="Filters" id="audit-filters">
      <form class="form" aria-label="Filter the audit log" onSubmit=${apply}>
        <div class="form-row">
          <${Input} label="Kind" name="kind" value=${kind} onValue=${setKind} hint="e.g. domain, token, alert-rule" />
          <${Input} label="Object" name="object_id" value=${objectId} onValue=${setObjectId} hint="an object's id or name" />
        </div>
        ${ctx && ctx.session.platform_admin && html`<${Checkbox} label="Include platform-wide events (tokens, logins, regions, edge nodes)" name="include_global" checked=${global} onValue=${setGlobal} />`}
        <div class="actions">
          <button type="submit" class="btn primary">Apply filters</button>
          <${Button} onClick=${() => { setKind(""); setObjectId(""); setGlobal(false); setApplied({ kind: "", object_id: "", global: false }); setCursors([]); setCursor(null); navigate("#/audit"); }}>Clear<//>
        </div>
      </form>
    <//>
    <${Card} title="Events" id="audit-events">
      <${ErrorBox} error=${events.error} />
      <${Table}
        caption=${`Events, newest first${cursors.length ? ` (page ${cursors.length + 1})` : ""}`}
        empty="No event matches."
        rows=${items}
        rowKey=${(e) => e.id}
        rowClass=${(e) => (selected && selected.id === e.id ? "ops-selected" : undefined)}
        columns=${[
          { key: "at", label: "When", render: (e) => html`<span title=${fmtTime(e.at)}>${fmtAgo(e.at)}</span>` },
          { key: "actor", label: "Who" },
          { key: "action", label: "What", render: (e) => html`<${Badge} state=${ACTION[e.action] === "good" ? "ok" : ACTION[e.action] === "bad" ? "error" : e.action}>${e.action}<//>` },
          { key: "kind", label: "Kind" },
          { key: "object_id", label: "Object" },
          { key: "revision", label: "Revision", class: "num" },
          { key: "_view", label: "Changes", render: (e) => html`<${Button} kind="small" aria-pressed=${selected && selected.id === e.id ? "true" : "false"}
              aria-label=${`Show the changes of event ${e.id}`} onClick=${() => setSelected(e)}>View<//>` },
        ]}
      />
      <div class="actions ops-pager">
        <${Button} disabled=${!cursors.length} onClick=${() => { const prev = cursors.slice(0, -1); setCursor(cursors[cursors.length - 1]); setCursors(prev); }}>Newer<//>
        <${Button} disabled=${!(events.data && events.data.next_cursor)} onClick=${() => { setCursors([...cursors, cursor]); setCursor(events.data.next_cursor); }}>Older<//>
      </div>
    <//>
    ${selected && html`<${Diff} key=${selected.id} event=${selected} />`}
  <//>`;
}
