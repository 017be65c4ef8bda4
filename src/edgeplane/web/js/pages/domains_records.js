// The DNS records of a domain as a table editor: add, edit and delete RRsets, each saved
// through PATCH /domains/{domain}/records; the API's reason for a field is shown on the row and
// field it names (nothing is stored on an error). Records Edgeplane manages are read-only.
import {
  html, useState, useRef, api, useApi, useSession,
  Card, ErrorBox, Button, WriteForm, Badge, Loading,
} from "../ui.js";
import { domainPath } from "./domains_common.js";

const TYPES = ["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA", "ALIAS"];
const FIELDS = ["name", "type", "ttl", "values", "proxied"];

// The reason the API gives for a field of the row's first (only) entry of `set`:
// "set[0].type", "set[0].values[1]" (our own checks) or "set.0.ttl" (request validation).
function rowErrors(err) {
  if (!err) return { fields: {}, other: null };
  const fields = {};
  const rest = [];
  for (const e of err.errors || []) {
    const m = /^set(?:\[0\]|\.0)\.([a-z_]+)/.exec(e.field || "");
    // Our own checks' reasons start with the field's path ("set[0].type: ..."): the row and
    // the field show where, so the path is left out.
    const reason = e.field && e.reason.startsWith(`${e.field}: `) ? e.reason.slice(e.field.length + 2) : e.reason;
    if (m && FIELDS.includes(m[1]) && !fields[m[1]]) fields[m[1]] = reason;
    else rest.push(reason);
  }
  const other = Object.keys(fields).length ? (rest.length ? rest.join("; ") : null) : err.message;
  return { fields, other };
}

function draftOf(r) {
  return { name: r.name, type: r.type, ttl: String(r.ttl), values: r.values.join("\n"), proxied: r.proxied, original: { name: r.name, type: r.type } };
}

function EditCells({ id, label, draft, set, errors }) {
  const e = errors.fields;
  const cell = (field, control) => html`<td>
    ${control}
    ${e[field] && html`<p class="field-error" id=${`${id}-${field}-error`} role="alert">${e[field]}</p>`}
  </td>`;
  const attrs = (field) => ({
    id: `${id}-${field}`,
    "aria-label": `${field === "ttl" ? "TTL" : field[0].toUpperCase() + field.slice(1)} of ${label}`,
    "aria-invalid": e[field] ? "true" : undefined,
    "aria-describedby": e[field] ? `${id}-${field}-error` : undefined,
  });
  return html`
    ${cell("name", html`<input ...${attrs("name")} value=${draft.name} autocomplete="off" spellcheck="false"
      onInput=${(ev) => set({ name: ev.currentTarget.value })} />`)}
    ${cell("type", html`<select ...${attrs("type")} onChange=${(ev) => set({ type: ev.currentTarget.value })}>
      ${TYPES.map((t) => html`<option value=${t} selected=${t === draft.type}>${t}</option>`)}
    </select>`)}
    ${cell("ttl", html`<input ...${attrs("ttl")} type="number" min="1" class="dm-ttl" value=${draft.ttl}
      onInput=${(ev) => set({ ttl: ev.currentTarget.value })} />`)}
    ${cell("values", html`<textarea ...${attrs("values")} rows="2" placeholder="one value per line" value=${draft.values}
      onInput=${(ev) => set({ values: ev.currentTarget.value })} />`)}
    ${cell("proxied", html`<input ...${attrs("proxied")} type="checkbox" checked=${draft.proxied}
      onChange=${(ev) => set({ proxied: ev.currentTarget.checked })} />`)}`;
}

export default function RecordsEditor({ name }) {
  const { project } = useSession();
  const path = `${domainPath(name)}/records`;
  const zone = useApi(path);
  const [drafts, setDrafts] = useState({}); // row key -> draft (being edited)
  const [errors, setErrors] = useState({}); // row key -> ApiError
  const [busy, setBusy] = useState(null);
  const seq = useRef(0);
  const records = zone.data ? zone.data.records : null;
  const user = records ? records.filter((r) => !r.managed) : [];
  const managed = records ? records.filter((r) => r.managed) : [];
  const keyOf = (r) => `${r.name} ${r.type}`;
  const setDraft = (key, patch) => setDrafts((d) => ({ ...d, [key]: { ...d[key], ...patch } }));
  const drop = (key) => {
    setDrafts((d) => { const n = { ...d }; delete n[key]; return n; });
    setErrors((e) => { const n = { ...e }; delete n[key]; return n; });
  };
  const send = async (key, body) => {
    setBusy(key);
    setErrors((e) => ({ ...e, [key]: null }));
    try {
      await api("PATCH", path, { body, project });
      drop(key);
      zone.reload();
    } catch (err) {
      setErrors((e) => ({ ...e, [key]: err }));
    } finally {
      setBusy(null);
    }
  };
  const save = (key) => {
    const d = drafts[key];
    if (!d) return;
    const entry = {
      name: d.name.trim() || "@",
      type: d.type,
      ttl: /^\d+$/.test(d.ttl.trim()) ? Number(d.ttl.trim()) : d.ttl,
      values: d.proxied ? [] : d.values.split("\n").map((v) => v.trim()).filter(Boolean),
      proxied: d.proxied,
    };
    const o = d.original;
    const renamed = o && (o.name !== entry.name || o.type !== entry.type);
    send(key, { set: [entry], delete: renamed ? [{ name: o.name, type: o.type }] : [] });
  };
  const add = () => {
    const key = `new-${++seq.current}`;
    setDrafts((d) => ({ ...d, [key]: { name: "", type: "A", ttl: "300", values: "", proxied: false, original: null } }));
  };
  const newKeys = Object.keys(drafts).filter((k) => k.startsWith("new-"));
  const onSubmit = () => {
    const row = document.activeElement && document.activeElement.closest("tr[data-key]");
    if (row && drafts[row.dataset.key]) save(row.dataset.key);
  };

  const editingRow = (key, label) => {
    const err = rowErrors(errors[key]);
    const invalid = errors[key] ? " invalid" : "";
    return html`<tr key=${key} data-key=${key} class=${`editing${invalid}`}>
        <${EditCells} id=${`rec-${key.replace(/[^a-z0-9-]/gi, "_")}`} label=${label} draft=${drafts[key]}
          set=${(patch) => setDraft(key, patch)} errors=${err} />
        <td class="dm-row-actions">
          <${Button} kind="primary small" write busy=${busy === key} onClick=${() => save(key)}>Save<//>
          <${Button} kind="small" onClick=${() => drop(key)}>Cancel<//>
        </td>
      </tr>
      ${err.other && html`<tr key=${`${key}-error`} class="invalid"><td colspan="6" class="field-error" role="alert">${err.other}</td></tr>`}`;
  };

  const viewRow = (r) => {
    const key = keyOf(r);
    if (drafts[key]) return editingRow(key, `record ${r.type} ${r.name}`);
    const err = errors[key];
    return html`<tr key=${key} data-key=${key} class=${err ? "invalid" : undefined}>
        <td class="mono">${r.name}</td>
        <td>${r.type}</td>
        <td class="num">${r.ttl}</td>
        <td class="mono dm-values">${r.proxied ? html`<span class="muted">edge nodes (GeoDNS)</span>` : r.values.map((v) => html`<div>${v}</div>`)}</td>
        <td>${r.proxied ? html`<${Badge} state="on">proxied<//>` : html`<span class="muted">no</span>`}</td>
        <td class="dm-row-actions">
          <${Button} kind="small" write aria-label=${`Edit ${r.type} ${r.name}`} onClick=${() => setDrafts((d) => ({ ...d, [key]: draftOf(r) }))}>Edit<//>
          <${Button} kind="small danger" write busy=${busy === key} aria-label=${`Delete ${r.type} ${r.name}`}
            onClick=${() => send(key, { delete: [{ name: r.name, type: r.type }] })}>Delete<//>
        </td>
      </tr>
      ${err && html`<tr key=${`${key}-error`} class="invalid"><td colspan="6" class="field-error" role="alert">${err.message}</td></tr>`}`;
  };

  return html`<${Card} title="DNS records" id="records" wide
      actions=${html`<${Button} write onClick=${add}>Add record<//>`}>
    <${ErrorBox} error=${zone.error} />
    ${!records
      ? !zone.error && html`<${Loading} what="records" />`
      : html`<${WriteForm} label="DNS records" onSubmit=${onSubmit} class="form dm-records">
        <div class="table-wrap"><table>
          <caption>Records of ${name} (zone serial ${zone.data.serial})</caption>
          <thead><tr>
            <th scope="col" class="dm-col-name">Name</th><th scope="col" class="dm-col-type">Type</th>
            <th scope="col" class="num dm-col-ttl">TTL (s)</th><th scope="col">Values</th>
            <th scope="col" class="dm-col-proxied">Proxied</th><th scope="col" class="dm-col-actions">Actions</th>
          </tr></thead>
          <tbody>
            ${user.map(viewRow)}
            ${newKeys.map((k, i) => editingRow(k, newKeys.length > 1 ? `new record ${i + 1}` : "new record"))}
            ${!user.length && !newKeys.length && html`<tr><td colspan="6" class="muted">No record of yours yet.</td></tr>`}
          </tbody>
        </table></div>
        <button type="submit" hidden>Save</button>
      <//>`}
    ${managed.length > 0 && html`<details class="dm-managed">
      <summary>Records Edgeplane manages (${managed.length}, read-only)</summary>
      <div class="table-wrap"><table>
        <thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col" class="num">TTL (s)</th><th scope="col">Values</th></tr></thead>
        <tbody>${managed.map((r) => html`<tr key=${`${r.fqdn} ${r.type}`}>
          <td class="mono">${r.name}</td><td>${r.type}</td><td class="num">${r.ttl}</td>
          <td class="mono dm-values">${r.values.map((v) => html`<div>${v}</div>`)}</td>
        </tr>`)}</tbody>
      </table></div>
    </details>`}
  <//>`;
}
