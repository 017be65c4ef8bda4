// A table of one kind of inventory object with its create / edit form and delete: the same
// pattern for regions, data centers, servers, services and DR configs, each described by a
// spec ({path, idKey, columns, fields, project}).
import {
  html, useState, useApi, useAction, api, Card, Table, Button, WriteForm, Input, Select, Textarea,
  ErrorBox, Notice, fieldError, useSession,
} from "../ui.js";

// A field: {name: "capacity.cpu", label, type: "text"|"number"|"select"|"json"|"list", options,
// hint, number (a select's or a comma-separated list's values are numbers), create: false (not on
// create), edit: false (not on edit)}. A spec may say noEdit, canDelete(row), deleteLabel.
function getIn(obj, dotted) {
  return dotted.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function setIn(obj, dotted, value) {
  const keys = dotted.split(".");
  let o = obj;
  keys.slice(0, -1).forEach((k) => { o[k] = o[k] && typeof o[k] === "object" ? o[k] : {}; o = o[k]; });
  o[keys[keys.length - 1]] = value;
}

function toText(field, v) {
  if (v === null || v === undefined) return "";
  if (field.type === "list") return (v || []).join(", ");
  if (field.type === "json") return JSON.stringify(v, null, 1);
  return String(v);
}

// The value to send: numbers as numbers (anything else as typed, for the API to judge), JSON
// parsed (the text as is when it does not parse: the API names the field).
function toValue(field, text) {
  if (field.type === "number" || field.number) {
    const n = Number(text);
    return text.trim() !== "" && isFinite(n) ? n : text;
  }
  if (field.type === "list") {
    const items = text.split(",").map((x) => x.trim()).filter(Boolean);
    return field.number ? items.map((x) => (isFinite(Number(x)) ? Number(x) : x)) : items;
  }
  if (field.type === "json") {
    try { return JSON.parse(text); } catch (_) { return text; }
  }
  return text;
}

function initial(spec, row) {
  const out = {};
  spec.fields.forEach((f) => { out[f.name] = row ? toText(f, getIn(row, f.name)) : toText(f, f.default); });
  return out;
}

function Field({ field, value, onValue, error }) {
  const common = { label: field.label, name: field.name, value, onValue, error, hint: field.hint };
  if (field.type === "select") return html`<${Select} ...${common} options=${field.options} />`;
  if (field.type === "json") return html`<${Textarea} ...${common} rows=${3} />`;
  return html`<${Input} ...${common} inputmode=${field.type === "number" ? "decimal" : undefined} />`;
}

function ResourceForm({ spec, row, onDone, onCancel }) {
  const editing = !!row;
  const fields = spec.fields.filter((f) => (editing ? f.edit !== false : f.create !== false));
  const [values, setValues] = useState(initial(spec, row));
  const [run, state] = useAction(async () => {
    const body = {};
    const was = initial(spec, row);
    fields.forEach((f) => {
      const text = values[f.name];
      if (editing && text === was[f.name]) return; // only what changed
      if (!editing && text === "" && !f.required) return; // the API's default
      setIn(body, f.name, toValue(f, text));
    });
    const opts = { body, project: spec.project === false ? undefined : spec.currentProject };
    if (editing) return api("PATCH", `${spec.path}/${encodeURIComponent(row[spec.idKey])}`, opts);
    return api("POST", spec.path, opts);
  });
  const submit = async () => {
    const done = await run();
    if (done) onDone(done);
  };
  const err = state.error;
  const named = err && err.errors && err.errors.some((e) => fields.some((f) => f.name === e.field || e.field.endsWith("." + f.name)));
  const title = editing ? `Edit ${spec.noun} ${row[spec.idKey]}` : `New ${spec.noun}`;
  return html`<${WriteForm} label=${title} onSubmit=${submit} class="form ops-resource-form">
    <h3>${title}</h3>
    <div class="form-row">
      ${fields.map((f) => html`<${Field} key=${f.name} field=${f} value=${values[f.name]}
        onValue=${(v) => setValues({ ...values, [f.name]: v })} error=${fieldError(err, f.name)} />`)}
    </div>
    ${err && !named && html`<${ErrorBox} error=${err} />`}
    ${err && named && html`<p class="field-error">Not saved: see the reasons given above.</p>`}
    <div class="actions">
      <${Button} type="submit" kind="primary" write busy=${state.busy}>${editing ? "Save" : `Create ${spec.noun}`}<//>
      ${onCancel && html`<${Button} onClick=${onCancel}>Cancel<//>`}
    </div>
  <//>`;
}

function DeleteButton({ spec, row, onDone }) {
  const [confirming, setConfirming] = useState(false);
  const id = row[spec.idKey];
  const word = spec.deleteLabel || "Delete";
  // (a 204 answers null: the action then resolves to true)
  const [run, state] = useAction(async () => {
    await api("DELETE", `${spec.path}/${encodeURIComponent(id)}`, { project: spec.project === false ? undefined : spec.currentProject });
    return true;
  });
  if (!confirming) {
    return html`<${Button} kind="small danger" write onClick=${() => setConfirming(true)} aria-label=${`${word} ${spec.noun} ${id}`}>${word}<//>`;
  }
  return html`<span class="actions">
    <${Button} kind="small danger" write busy=${state.busy} aria-label=${`Confirm: ${word.toLowerCase()} ${spec.noun} ${id}`}
      onClick=${async () => { if (await run()) onDone(); }}>Confirm ${word.toLowerCase()}<//>
    <${Button} kind="small" onClick=${() => { setConfirming(false); state.reset(); }} aria-label=${`Keep ${spec.noun} ${id}`}>Keep<//>
    ${state.error && html`<span class="field-error" role="alert">${state.error.message}</span>`}
  </span>`;
}

export function ResourceTab({ spec, extra }) {
  const ctx = useSession();
  const full = { ...spec, currentProject: ctx && ctx.project };
  const [cursor, setCursor] = useState(null);
  const [cursors, setCursors] = useState([]);
  const list = useApi(spec.path, { project: spec.project, query: spec.paged ? { cursor, limit: 50 } : undefined });
  const [editing, setEditing] = useState(null);
  const [creating, setCreating] = useState(false);
  const [message, setMessage] = useState(null);
  const rows = list.data ? (Array.isArray(list.data) ? list.data : list.data.items) : undefined;
  const done = (what) => () => { setMessage(what); setEditing(null); setCreating(false); list.reload(); };
  const columns = [
    ...spec.columns,
    {
      key: "_actions",
      label: "Actions",
      render: (r) => html`<span class="actions">
        ${!spec.noEdit && html`<${Button} kind="small" onClick=${() => { setCreating(false); setEditing(r); setMessage(null); }} aria-label=${`Edit ${spec.noun} ${r[spec.idKey]}`}>Edit<//>`}
        ${extra && extra(r, list.reload)}
        ${(!spec.canDelete || spec.canDelete(r)) && html`<${DeleteButton} key=${r[spec.idKey]} spec=${full} row=${r} onDone=${done(`${spec.deleteLabel ? "Ended" : "Deleted"} ${spec.noun} ${r[spec.idKey]}.`)} />`}
      </span>`,
    },
  ];
  return html`<${Card} title=${spec.title} id=${`inv-${spec.key}`}
      actions=${html`<${Button} kind="primary" write onClick=${() => { setEditing(null); setCreating(true); setMessage(null); }}>New ${spec.noun}<//>`}>
    ${spec.intro && html`<p class="muted">${spec.intro}</p>`}
    <${ErrorBox} error=${list.error} />
    ${message && html`<${Notice} kind="good">${message}<//>`}
    ${creating && html`<${ResourceForm} spec=${full} onDone=${(r) => done(`Created ${spec.noun} ${r[spec.idKey]}.`)()} onCancel=${() => setCreating(false)} />`}
    ${editing && html`<${ResourceForm} key=${editing[spec.idKey]} spec=${full} row=${editing} onDone=${(r) => done(`Saved ${spec.noun} ${r[spec.idKey]}.`)()} onCancel=${() => setEditing(null)} />`}
    <${Table} caption=${spec.title} columns=${columns} rows=${rows} rowKey=${(r) => r[spec.idKey]} empty=${`No ${spec.noun} yet.`} />
    ${spec.paged && (cursors.length > 0 || (list.data && list.data.next_cursor)) &&
    html`<div class="actions ops-pager">
      <${Button} disabled=${!cursors.length} onClick=${() => { const prev = cursors.slice(0, -1); setCursors(prev); setCursor(cursors[cursors.length - 1]); }}>Previous page<//>
      <${Button} disabled=${!(list.data && list.data.next_cursor)} onClick=${() => { setCursors([...cursors, cursor]); setCursor(list.data.next_cursor); }}>Next page<//>
    </div>`}
  <//>`;
}
