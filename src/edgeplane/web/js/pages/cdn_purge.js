// Purges: a path, a prefix (/static/*) or everything, on every edge node; then each node's
// completion, polled every second (GET /cdn/purges/{id}) until every node has done it.
import {
  html, useState, useEffect, useApi, useAction, Card, Table, ErrorBox, Input, Select, Button, WriteForm,
  Badge, Notice, fmtTime, fmtMs,
} from "../ui.js";
import { CDN, errorAt, unshown, useProjectApi } from "./cdn_common.js";

const MODES = [
  ["path", "One path"],
  ["prefix", "Everything under a prefix"],
  ["all", "Everything"],
];

function nodeState(n) {
  if (n.error) return ["error", "failed"];
  return n.completed_at ? ["done", "done"] : ["pending", "purging…"];
}

function Progress({ id }) {
  const [complete, setComplete] = useState(false);
  const purge = useApi(`${CDN}/purges/${encodeURIComponent(id)}`, { every: complete ? undefined : 1000 });
  const data = purge.data;
  useEffect(() => {
    if (data && data.complete) setComplete(true);
  }, [data]);
  const columns = [
    { key: "node", label: "Edge node" },
    { key: "state", label: "State", render: (n) => { const [s, t] = nodeState(n); return html`<${Badge} state=${s}>${t}<//>`; } },
    { key: "completed_at", label: "Completed at", render: (n) => (n.completed_at ? fmtTime(n.completed_at) : "—") },
    { key: "latency_ms", label: "Time taken", class: "num", render: (n) => fmtMs(n.latency_ms) },
    { key: "purged_count", label: "Objects removed", class: "num", render: (n) => n.purged_count ?? "—" },
    { key: "error", label: "Error", render: (n) => n.error || "—" },
  ];
  return html`<div class="cdn-purge-progress" aria-live="polite">
    <h3>Purge <code>${id}</code></h3>
    <${ErrorBox} error=${purge.error} />
    ${data &&
    html`<p>
        ${data.complete
          ? html`<${Badge} state="completed">complete<//> every online edge node has purged (${data.purged_count} objects removed)`
          : html`<${Badge} state="pending">in progress<//> ${data.nodes.filter((n) => n.completed_at).length} of ${data.nodes.length} edge nodes done`}
        <span class="muted"> · requested ${fmtTime(data.created_at)}</span>
      </p>
      <${Table} columns=${columns} rows=${data.nodes} rowKey=${(n) => n.node} caption="Completion per edge node"
        empty="No edge node online: nothing to purge." />`}
  </div>`;
}

export default function PurgeCard() {
  const call = useProjectApi();
  const [mode, setMode] = useState("path");
  const [path, setPath] = useState("");
  const [prefix, setPrefix] = useState("/static/*");
  const [purges, setPurges] = useState([]);
  const [purge, purging] = useAction(async () => {
    const body = mode === "all" ? { purge_all: true } : { paths: [(mode === "path" ? path : prefix).trim()] };
    const result = await call("POST", `${CDN}/purge`, { body });
    setPurges((old) => [result.id, ...old].slice(0, 3));
    return result;
  });
  const err = purging.error;
  return html`<${Card} title="Purge the cache" id="cdn-purge">
    <${WriteForm} label="Purge the cache" onSubmit=${purge}>
      <div class="form-row">
        <${Select} label="What to purge" name="cdn-purge-mode" value=${mode} onValue=${setMode} options=${MODES} />
        ${mode === "path" &&
        html`<${Input} label="Path" name="cdn-purge-path" value=${path} onValue=${setPath} placeholder="/index.html"
          hint="An exact path, from the first /" error=${errorAt(err, "paths.0") || errorAt(err, "paths")} />`}
        ${mode === "prefix" &&
        html`<${Input} label="Prefix" name="cdn-purge-prefix" value=${prefix} onValue=${setPrefix}
          hint="Ends with /* : everything under it (/static/*)" error=${errorAt(err, "paths.0") || errorAt(err, "paths")} />`}
      </div>
      ${mode === "all" && html`<${Notice} kind="warn">Every cached object of the project is removed: the origin gets every request again until the cache fills.<//>`}
      <${ErrorBox} error=${unshown(err, mode === "all" ? [] : ["paths"])} />
      <div class="actions">
        <${Button} write type="submit" kind=${mode === "all" ? "danger" : "primary"} busy=${purging.busy}>
          ${mode === "all" ? "Purge everything" : "Purge"}
        <//>
      </div>
    <//>
    ${purges.map((id) => html`<${Progress} key=${id} id=${id} />`)}
  <//>`;
}
