// The project's edge functions (current version and its status, routes, updated; refreshed
// every few seconds) and the form that deploys one (functions_deploy.js).
import { html, useApi, navigate, Page, Card, Table, ErrorBox, Notice, fmtAgo, fmtTime } from "../ui.js";
import { FN, fnHref, VersionStatus, RouteList } from "./functions_common.js";
import { DeployForm } from "./functions_deploy.js";

const EVERY = 3000;

export default function FunctionList({ query }) {
  const list = useApi(FN, { query: { limit: 1000 }, every: EVERY });
  const items = list.data ? list.data.items : null;
  const deleted = query && query.get("deleted");
  const columns = [
    { key: "name", label: "Function", render: (f) => html`<a href=${fnHref(f.name)}>${f.name}</a>` },
    { key: "version", label: "Version", class: "num", render: (f) => (f.current ? `v${f.current.version}` : "—") },
    { key: "status", label: "Status", render: (f) => (f.current ? html`<${VersionStatus} status=${f.current.status} />` : "—") },
    { key: "routes", label: "Routes", render: (f) => html`<${RouteList} routes=${f.current && f.current.routes} />` },
    { key: "updated_at", label: "Updated", class: "sc-nowrap", render: (f) => html`<span title=${fmtTime(f.updated_at)}>${fmtAgo(f.updated_at)}</span>` },
  ];
  return html`<${Page} title="Functions"
      subtitle="Edge functions: versioned JavaScript handlers the edge nodes run for the routes they answer.">
    <${Card} title="Functions" id="fn-list" wide>
      <${ErrorBox} error=${list.error} />
      ${deleted && html`<${Notice} kind="good">Function ${deleted} deleted: its routes leave every node.<//>`}
      <${Table} columns=${columns} rows=${items} rowKey=${(f) => f.name} caption="The project's functions"
        empty="No function yet: deploy one below." />
      <p class="hint">Refreshed every ${EVERY / 1000} s.</p>
    <//>
    <${DeployForm} onDeployed=${(out) => navigate(fnHref(out.function.name))} />
  <//>`;
}
